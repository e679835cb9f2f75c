# ioarchive: the two commands are `make demo` and `make test`; everything else is plumbing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv check-prereqs test lint demo up down lock clean clean-s3 bench browser test-e2e

help:
	@echo "make demo   run a whole release on a generated campaign and print where the results are"
	@echo "make test   lint and run the whole test suite"
	@echo "make up / make down   start / stop the local Airflow + S3 stack (var/stack/ is kept)"
	@echo "make clean-s3         stop the stack and empty its buckets (var/stack/s3/)"

check-prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || \
	  { echo "ioarchive needs Python 3.11+ as '$(PYTHON)': install it (or run make PYTHON=python3.11 ...)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1); \
	  if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
	    echo "ioarchive needs Java 17+ for Spark: install a JDK 17 (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; fi

# The venv is rebuilt only when the lock file or pyproject.toml change.
$(STAMP): requirements.lock requirements-build.txt pyproject.toml
	@$(MAKE) --no-print-directory check-prereqs
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-build.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .

# The reviewer-flow browser test drives Debian's Chromium (browser downloads are impossible here); the
# CSV-loader test pipes unzip | sed | sqlite3 as a researcher would.
browser:
	@{ command -v chromium && command -v unzip && command -v sqlite3; } >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium, unzip and sqlite3 for the browser and CSV-loader tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium unzip sqlite3 >/dev/null; \
	  else echo "chromium, unzip or sqlite3 is missing: apt-get install chromium unzip sqlite3 (browser and CSV-loader tests)"; fi; }

# Two workers: the end-to-end group (one worker, shared stacks, in order) beside the rest.
test: venv lint browser
	$(BIN)/python -m pytest -n 2 --dist loadscope

# Only the end-to-end part of the suite: whole releases under Airflow (SQLite, PostgreSQL with the
# kill-and-clear drill) and the reviewer flow in Chromium.
test-e2e: venv browser
	$(BIN)/python -m pytest tests/e2e

demo: venv
	$(BIN)/python -m ioarchive.devtools.demo

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Regenerate the lock file from pyproject.toml's direct dependencies (needs the registries).
lock:
	rm -rf /tmp/ioarchive-lock && $(PYTHON) -m venv /tmp/ioarchive-lock
	/tmp/ioarchive-lock/bin/pip install -q -e '.[dev]'
	/tmp/ioarchive-lock/bin/pip freeze --exclude-editable | grep -v '^ioarchive' > requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info

# The local stack's buckets persist in var/stack/s3/ across `make down` / `make up`; this forgets them.
clean-s3: down
	rm -rf var/stack/s3

up: venv
	$(BIN)/python -m ioarchive.devtools.stack up

down:
	@test -x $(BIN)/python && $(BIN)/python -m ioarchive.devtools.stack down || true
