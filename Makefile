# Everything runs inside .venv, created here from pinned versions (constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= examples/quickstart.yaml

.PHONY: run test unit lint audit bench clean help

help:
	@echo "make run    - serve examples/quickstart.yaml on http://127.0.0.1:8080"
	@echo "make test   - install test dependencies and run all tests"
	@echo "make lint   - ruff and mypy"
	@echo "make audit  - known vulnerabilities in the installed dependencies (pip-audit)"
	@echo "make bench  - run the benchmarks"
	@echo "make crds   - regenerate the CRDs from the models"
	@echo "make manifests - regenerate the CRDs and deploy/manifests from the Helm chart"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/autoscaler serve --config $(CONFIG)

test: $(STAMP)
	scripts/install-browser.sh
	scripts/install-test-servers.sh
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pip-audit with PyPI's vulnerability feed (the package registry: no other network needed).
# Fails on a known vulnerability or an unreachable feed, and (here, not in CI) on dependencies
# the feed cannot answer for; AUDIT_FLAGS=--allow-incomplete turns the last into a loud warning.
# See scripts/audit.py and docs/operations.md (Security: dependency audit).
AUDIT_FLAGS ?=
audit: $(STAMP)
	$(BIN)/python scripts/audit.py $(AUDIT_FLAGS)

bench: $(STAMP)
	$(BIN)/python bench/loop_pass.py

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

# Generated deployment files (deploy/crds, the chart's crds/, deploy/manifests); tests check them.
.PHONY: crds manifests
crds: $(STAMP)
	$(BIN)/python -m autoscaler.crds deploy/crds deploy/helm/node-autoscaler/crds

manifests: crds
	PYTHON=$(BIN)/python scripts/k8s-tools.sh .tools/bin
	scripts/render-manifests.sh > deploy/manifests/node-autoscaler.yaml.tmp
	mv deploy/manifests/node-autoscaler.yaml.tmp deploy/manifests/node-autoscaler.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
