#!/usr/bin/env bash
# Make sure a local PostgreSQL server runs and has the login role the concurrency tests use.
# Run by `make test`; needs root (or the postgres user) to start the server. Without it, the tests that need
# PostgreSQL are skipped with the reason (except under CI=true, where they fail).
set -euo pipefail
ROLE=confluence_test
if [ "$(id -u)" != 0 ]; then
  echo "ensure-postgres: not root; assuming PostgreSQL is set up as described in README.md (CONFLUENCE_TEST_PG_URL)."
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "ensure-postgres: installing PostgreSQL with apt-get"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
read -r version cluster _port status _rest < <(pg_lsclusters -h | head -n 1)
if [ "$status" != "online" ]; then
  pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 50); do
  runuser -u postgres -- psql -qtAc "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.2
done
if [ "$(runuser -u postgres -- psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'")" != "1" ]; then
  runuser -u postgres -- psql -qc "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$ROLE'"
fi
echo "ensure-postgres: PostgreSQL $version/$cluster is online with role $ROLE"
