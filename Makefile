# The two commands: `make demo` and `make test` (plus `make bench`).
# Both create .venv with a Python 3.11 or 3.12 (oso 0.27.3 has no wheels beyond 3.12).

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY_CANDIDATES := python3.12 python3.11 python3 python
PYTHON ?= $(shell for p in $(PY_CANDIDATES); do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3,11),(3,12)) else 1)' 2>/dev/null; then \
	    command -v $$p; break; fi; done)

.PHONY: demo test lint typecheck policytest pytest bench clean venv check-python idp axe parts cluster soak

check-python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "portal-gateway needs Python 3.11 or 3.12 (oso 0.27.3 has no wheels for 3.13+)."; \
	  echo "Install one (e.g. apt-get install python3.11 python3.11-venv, or pyenv install 3.11) and retry,"; \
	  echo "or point make at it: make PYTHON=/path/to/python3.11 ..."; exit 1; fi

$(BIN)/.installed-demo: pyproject.toml | check-python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(BIN)/.installed: pyproject.toml | check-python
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(BIN)/.installed-demo

venv: $(BIN)/.installed

tests/idp/node_modules/.installed: tests/idp/package.json tests/idp/package-lock.json
	cd tests/idp && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

idp: tests/idp/node_modules/.installed

# axe-core for the accessibility audit of the login pages (tests/browser/test_accessibility.py).
tests/browser/axe/node_modules/.installed: tests/browser/axe/package.json tests/browser/axe/package-lock.json
	cd tests/browser/axe && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

axe: tests/browser/axe/node_modules/.installed

demo: $(BIN)/.installed-demo
	$(BIN)/portal-gateway demo

lint: venv
	$(BIN)/ruff check gateway demo tests bench deploy

typecheck: venv
	$(BIN)/mypy --strict gateway

policytest: venv
	$(BIN)/portal-gateway policy check
	$(BIN)/portal-gateway policy test

# The real parts the tests drive: Chromium (login pages), nginx and Caddy (forward-auth, make cluster),
# wrk (bench), docker-compose (ships the Compose specification's schema that deploy/compose.yaml is checked against).
# Installed with apt when running as root; otherwise make stops and prints the command.
TEST_PARTS := chromium:chromium nginx:nginx-light caddy:caddy wrk:wrk docker-compose:docker-compose
parts:
	@missing=""; for pair in $(TEST_PARTS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "make test needs:$$missing — run: sudo apt-get install -y$$missing"; exit 1; fi; fi

pytest: venv idp axe parts
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=20

test: lint typecheck policytest pytest

# The production topology as real processes: nginx, two replicas, Redis, PostgreSQL, demo backend.
cluster: venv
	$(BIN)/python -m deploy.cluster

bench: venv
	$(BIN)/python -m bench.run $(ARGS)

# Soak and chaos over the full path (deploy/chaos.py), not part of make test:
# e.g. make soak ARGS="--requests 20000 --sessions 1000"
soak: venv
	$(BIN)/python -m deploy.chaos $(ARGS)

clean:
	rm -rf $(VENV) tests/idp/node_modules tests/browser/axe/node_modules var .mypy_cache .ruff_cache .pytest_cache
