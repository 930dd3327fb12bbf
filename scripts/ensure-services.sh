#!/usr/bin/env bash
# Make sure the local services of the real-deployment tests run:
#  * PostgreSQL, with the login role the concurrency and deployment tests use;
#  * Redis (Debian's redis-server), the Celery broker of the CeleryExecutor deployment test, on loopback only.
# Run by `make test`; needs root to install (apt-get) and start them. Without root, the tests that need them are
# skipped with the reason (except under CI=true, where they fail).
set -euo pipefail
ROLE=confluence_test
REDIS_PORT="${CONFLUENCE_TEST_REDIS_PORT:-6379}"
if [ "$(id -u)" != 0 ]; then
  echo "ensure-services: not root; assuming PostgreSQL and Redis are set up as described in CONTRIBUTING.md" \
       "(CONFLUENCE_TEST_PG_URL, CONFLUENCE_TEST_REDIS_URL)."
  exit 0
fi

missing=()
command -v pg_lsclusters >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ensure-services: installing ${missing[*]} with apt-get"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

# -- PostgreSQL ------------------------------------------------------------------------------------------
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
echo "ensure-services: PostgreSQL $version/$cluster is online with role $ROLE"

# -- Redis -----------------------------------------------------------------------------------------------
# Loopback only, protected mode on, nothing persisted (the broker's queues are scratch data of the tests). A
# server that already answers (the package's own service, which Debian's redis.conf binds to loopback) is used.
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  install -d -o redis -g redis -m 0750 /var/lib/redis /var/log/redis
  runuser -u redis -- redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
    --daemonize yes --dir /var/lib/redis --logfile /var/log/redis/confluence-test.log \
    --pidfile /var/lib/redis/confluence-test.pid --save "" --appendonly no
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" != "PONG" ]; then
  echo "ensure-services: Redis did not answer on 127.0.0.1:$REDIS_PORT; see /var/log/redis/confluence-test.log" >&2
  exit 1
fi
echo "ensure-services: Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) is online on 127.0.0.1:$REDIS_PORT"
