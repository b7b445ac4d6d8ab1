# Everything runs inside .venv, created here from pinned versions (constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= examples/quickstart.yaml

.PHONY: run test unit lint bench clean help

help:
	@echo "make run    - serve examples/quickstart.yaml on http://127.0.0.1:8080"
	@echo "make test   - install test dependencies and run all tests"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - run the benchmarks"
	@echo "make crds   - regenerate the CRDs from the models"
	@echo "make manifests - regenerate the CRDs and deploy/manifests from the Helm chart"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
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

bench: $(STAMP)
	$(BIN)/python bench/loop_pass.py

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
