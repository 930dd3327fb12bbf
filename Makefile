# The two commands of the README: `make demo` and `make test`. Everything they need is installed here,
# into virtualenvs this Makefile creates, pinned by the constraints file of each tested Airflow version.

PYTHON ?= python3
AIRFLOW3 := 3.3.2
AIRFLOW2 := 2.11.2
VENV := .venv
VENV2 := .venv-airflow2
CONSTRAINTS3 := constraints/airflow-$(AIRFLOW3).txt
CONSTRAINTS2 := constraints/airflow-$(AIRFLOW2).txt
SOURCES := pyproject.toml $(shell find airflow_provider_confluence -name '*.py' -o -name py.typed)
PYTEST_ARGS ?=
export CONFLUENCE_TEST_PG_URL ?= postgresql://confluence_test:confluence_test@127.0.0.1:5432/postgres
export CONFLUENCE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: demo test test-airflow3 test-airflow2 install install2 services postgres chromium clean constraints

# A virtualenv with Airflow and the test tools, built once per constraints file.
$(VENV)/.deps: $(CONSTRAINTS3)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -qq --upgrade pip
	$(VENV)/bin/pip install -qq -c $(CONSTRAINTS3) "apache-airflow==$(AIRFLOW3)" apache-airflow-providers-common-compat \
		apache-airflow-providers-http apache-airflow-providers-celery celery kombu redis \
		requests requests-oauthlib pytest requests-mock psycopg2-binary asyncpg hypothesis selenium pandas
	touch $@

$(VENV2)/.deps: $(CONSTRAINTS2)
	$(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/pip install -qq --upgrade pip
	$(VENV2)/bin/pip install -qq -c $(CONSTRAINTS2) "apache-airflow==$(AIRFLOW2)" apache-airflow-providers-common-compat \
		apache-airflow-providers-http requests requests-oauthlib pytest requests-mock psycopg2-binary \
		hypothesis pandas
	touch $@

# The provider itself is installed as a built wheel (not editable), so the tests see what users get.
$(VENV)/.pkg: $(VENV)/.deps $(SOURCES)
	$(VENV)/bin/pip install -qq --no-deps --force-reinstall -c $(CONSTRAINTS3) .
	rm -rf build *.egg-info
	touch $@

$(VENV2)/.pkg: $(VENV2)/.deps $(SOURCES)
	$(VENV2)/bin/pip install -qq --no-deps --force-reinstall -c $(CONSTRAINTS2) .
	rm -rf build *.egg-info
	touch $@

install: $(VENV)/.pkg
install2: $(VENV2)/.pkg

# PostgreSQL (the deployment and concurrency tests) and Redis (the Celery broker of the CeleryExecutor test).
services:
	@bash scripts/ensure-services.sh

postgres: services

# Debian's chromium and chromedriver, for the connection-form test in a real browser.
chromium:
	@bash scripts/ensure-chromium.sh

demo: install
	$(VENV)/bin/python scripts/demo.py

test: test-airflow3 test-airflow2

test-airflow3: install services chromium
	cd tests && ../$(VENV)/bin/pytest $(PYTEST_ARGS)

test-airflow2: install2 services
	cd tests && ../$(VENV2)/bin/pytest -m airflow2 $(PYTEST_ARGS)

# Regenerate the pins from a fresh resolution (needs the package index).
constraints:
	rm -rf /tmp/constraints-venv && $(PYTHON) -m venv /tmp/constraints-venv
	/tmp/constraints-venv/bin/pip install -qq "apache-airflow==$(AIRFLOW3)" apache-airflow-providers-common-compat \
		apache-airflow-providers-http apache-airflow-providers-celery celery kombu redis requests requests-oauthlib \
		pytest requests-mock psycopg2-binary asyncpg hypothesis pandas selenium
	/tmp/constraints-venv/bin/pip freeze > $(CONSTRAINTS3)
	rm -rf /tmp/constraints-venv && $(PYTHON) -m venv /tmp/constraints-venv
	/tmp/constraints-venv/bin/pip install -qq "apache-airflow==$(AIRFLOW2)" apache-airflow-providers-common-compat \
		apache-airflow-providers-http requests requests-oauthlib pytest requests-mock psycopg2-binary hypothesis pandas
	/tmp/constraints-venv/bin/pip freeze > $(CONSTRAINTS2)

clean:
	rm -rf $(VENV) $(VENV2) $(VENV_BENCH) build *.egg-info

# `make bench`: the figures of the README's "Benchmarks" section (bench/run.py prints them and writes
# bench/results/). A script, not a test, and not part of `make test`. It has its own virtualenv, so that its
# packages (atlassian-python-api, the Jira provider, matplotlib; pinned in bench/requirements.txt under the same
# constraints) never reach the one the tests run in.
VENV_BENCH := .venv-bench

$(VENV_BENCH)/.deps: $(CONSTRAINTS3) bench/requirements.txt
	$(PYTHON) -m venv $(VENV_BENCH)
	$(VENV_BENCH)/bin/pip install -qq --upgrade pip
	$(VENV_BENCH)/bin/pip install -qq -c $(CONSTRAINTS3) "apache-airflow==$(AIRFLOW3)" \
		apache-airflow-providers-common-compat requests requests-oauthlib psycopg2-binary asyncpg -r bench/requirements.txt
	touch $@

$(VENV_BENCH)/.pkg: $(VENV_BENCH)/.deps $(SOURCES)
	$(VENV_BENCH)/bin/pip install -qq --no-deps --force-reinstall -c $(CONSTRAINTS3) .
	rm -rf build *.egg-info
	touch $@

.PHONY: bench
bench: postgres $(VENV_BENCH)/.pkg
	$(VENV_BENCH)/bin/python bench/run.py
