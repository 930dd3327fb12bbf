# The two commands of the README: `make demo` and `make test` (which also builds the docs site: `make docs`).
# Everything they need is installed here, into virtualenvs this Makefile creates, pinned by the constraints file
# of each tested Airflow version.

PYTHON ?= python3
PYTEST_ARGS ?=
export CONFLUENCE_TEST_PG_URL ?= postgresql://confluence_test:confluence_test@127.0.0.1:5432/postgres
export CONFLUENCE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

# Every supported Airflow line, its latest patch release, its virtualenv and the packages only it needs.
# 3.3 runs the whole suite, 2.11 the tests marked `airflow2`, the others the tests marked `every_line`.
LINES := 2.11 3.0 3.1 3.2 3.3
AIRFLOW_2.11 := 2.11.2
AIRFLOW_3.0 := 3.0.6
AIRFLOW_3.1 := 3.1.8
AIRFLOW_3.2 := 3.2.2
AIRFLOW_3.3 := 3.3.2
VENV_2.11 := .venv-airflow2
VENV_3.0 := .venv-airflow3.0
VENV_3.1 := .venv-airflow3.1
VENV_3.2 := .venv-airflow3.2
VENV_3.3 := .venv
EXTRA_3.0 := asyncpg
EXTRA_3.1 := asyncpg
EXTRA_3.2 := asyncpg
EXTRA_3.3 := asyncpg selenium apache-airflow-providers-celery celery kombu redis mypy ruff import-linter
MARKER_2.11 := -m airflow2
MARKER_3.0 := -m every_line
MARKER_3.1 := -m every_line
MARKER_3.2 := -m every_line
MARKER_3.3 :=
NEEDS_3.3 := chromium
# The day each release was published on PyPI: `make constraints` pins what PyPI held at its end. 3.3.2 and
# 2.11.2 (empty) keep their existing pins, which came from a fresh resolution.
PUBLISHED_3.0 := 2025-08-29
PUBLISHED_3.1 := 2026-03-11
PUBLISHED_3.2 := 2026-05-29
PUBLISHED_CUTOFF = --exclude-newer "$(PUBLISHED_$(1))T23:59:59Z" \
	--exclude-newer-package "apache-airflow-providers-common-compat=$$$$(date -u +%Y-%m-%dT%H:%M:%SZ)"
TEST_PACKAGES := apache-airflow-providers-common-compat apache-airflow-providers-http requests \
	pytest requests-mock psycopg2-binary hypothesis pandas matplotlib
SOURCES := pyproject.toml $(shell find airflow_provider_confluence -name '*.py' -o -name py.typed -o -name '*.html')

# The names the README and the bench use.
AIRFLOW3 := $(AIRFLOW_3.3)
AIRFLOW2 := $(AIRFLOW_2.11)
VENV := $(VENV_3.3)
VENV2 := $(VENV_2.11)
CONSTRAINTS3 := constraints/airflow-$(AIRFLOW3).txt

.PHONY: demo docs test lint test-airflow3 test-airflow2 test-lines install install2 services postgres chromium clean constraints wheel

# The provider is built once as a wheel and installed (not editable) in every virtualenv, so the tests see what
# users get.
WHEEL_DIR := build/wheel
$(WHEEL_DIR)/.built: $(SOURCES)
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PYTHON) -m pip wheel -q --no-deps -w $(WHEEL_DIR) .
	rm -rf build/lib build/bdist* *.egg-info
	touch $@
wheel: $(WHEEL_DIR)/.built

# One virtualenv per line: Airflow and the test tools, pinned by the line's constraints file; then the wheel.
define LINE
$(VENV_$(1))/.deps: constraints/airflow-$(AIRFLOW_$(1)).txt
	rm -rf $(VENV_$(1)) && $(PYTHON) -m venv $(VENV_$(1))
	$(VENV_$(1))/bin/pip install -qq --upgrade pip
	$(VENV_$(1))/bin/pip install -qq -c constraints/airflow-$(AIRFLOW_$(1)).txt "apache-airflow==$(AIRFLOW_$(1))" \
		$(TEST_PACKAGES) $(EXTRA_$(1))
	touch $$@

$(VENV_$(1))/.pkg: $(VENV_$(1))/.deps $(WHEEL_DIR)/.built
	$(VENV_$(1))/bin/pip install -qq --no-deps --force-reinstall $(WHEEL_DIR)/*.whl
	touch $$@

.PHONY: install-$(1) test-$(1) constraints-$(1)
install-$(1): $(VENV_$(1))/.pkg

test-$(1): install-$(1) services $(NEEDS_$(1))
	cd tests && ../$(VENV_$(1))/bin/pytest $(MARKER_$(1)) $(PYTEST_ARGS)

# Pins for the line (needs the package index): as PyPI stood at the end of the day the release was published,
# except common-compat (the provider needs >= 1.22); with no date, a fresh resolution.
constraints-$(1):
	rm -rf /tmp/constraints-venv && $(PYTHON) -m venv /tmp/constraints-venv
	/tmp/constraints-venv/bin/pip install -qq uv
	printf '%s\n' "apache-airflow==$(AIRFLOW_$(1))" "apache-airflow-providers-common-compat>=1.22" \
		$(filter-out apache-airflow-providers-common-compat,$(TEST_PACKAGES)) markdown-it-py $(EXTRA_$(1)) \
		> /tmp/constraints-venv/requirements.in
	/tmp/constraints-venv/bin/uv pip compile -q --python-version 3.11 --no-header --no-annotate \
		$(if $(PUBLISHED_$(1)),$(PUBLISHED_CUTOFF)) /tmp/constraints-venv/requirements.in -o /tmp/constraints-venv/pins.txt
	{ sed -n '/^#/p' constraints/airflow-$(AIRFLOW_$(1)).txt; cat /tmp/constraints-venv/pins.txt; } \
		> constraints/airflow-$(AIRFLOW_$(1)).txt.new
	mv constraints/airflow-$(AIRFLOW_$(1)).txt.new constraints/airflow-$(AIRFLOW_$(1)).txt
endef
$(foreach line,$(LINES),$(eval $(call LINE,$(line))))

install: install-3.3
install2: install-2.11

# PostgreSQL (the deployment and concurrency tests) and Redis (the Celery broker of the CeleryExecutor test).
services:
	@bash scripts/ensure-services.sh

postgres: services

# Debian's chromium and chromedriver, for the connection-form test in a real browser.
chromium:
	@bash scripts/ensure-chromium.sh

demo: install
	$(VENV)/bin/python scripts/demo.py

# The checks that need no server: ruff (lint and format), mypy (strict; pyproject.toml) and the import
# contracts of the package's layers (import-linter; pyproject.toml), all on the source tree.
lint: install-3.3
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports

# The docs site (strict: a broken link, page or snippet fails) and the checks, then the whole suite on the newest
# line, the `airflow2` tests on 2.11, the `every_line` tests on the others.
test: docs lint test-airflow3 test-airflow2 test-lines

test-airflow3: test-3.3
test-airflow2: test-2.11
test-lines: test-3.0 test-3.1 test-3.2

constraints: $(addprefix constraints-,$(LINES))

clean:
	rm -rf $(foreach line,$(LINES),$(VENV_$(line))) $(VENV_BENCH) $(VENV_DOCS) build *.egg-info

# `make docs`: the MkDocs site of docs/ (mkdocs.yml) in build/site, built with --strict so that a broken link, a
# page missing from the nav, or a snippet whose file is gone (every DAG shown is included from example_dags/)
# fails. Its own virtualenv, pinned by constraints/tools.txt.
VENV_DOCS := .venv-docs

$(VENV_DOCS)/.deps: constraints/tools.txt
	rm -rf $(VENV_DOCS) && $(PYTHON) -m venv $(VENV_DOCS)
	$(VENV_DOCS)/bin/pip install -qq -c constraints/tools.txt mkdocs pymdown-extensions
	touch $@

docs: $(VENV_DOCS)/.deps
	$(VENV_DOCS)/bin/mkdocs build --strict -d build/site

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
