# One entry point for set-up, tests, demo and benchmarks; every target creates .venv when missing.
PY ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# aws-sam-cli lives in its own venv: its pinned dependencies conflict with the dev tools'.
SAM_VERSION := 1.170.0
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_VERSION)
export SAM_CLI_TELEMETRY ?= 0

RUN := PYTHONPATH=layers/idv:. $(BIN)/python

.PHONY: venv test unit lint demo dev bench build validate clean browser openapi

venv: $(STAMP)

$(STAMP): requirements-dev.txt layers/idv/requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (headless browser for the FaceID end-to-end test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict layers/idv/idv

test: venv browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict layers/idv/idv
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest tests/unit

# Every flow against the embedded default (moto + provider sandbox + local API), offline.
demo: venv
	$(RUN) -m sandbox.demo

# The same local stack kept serving until Ctrl-C, with the API URL, key and curl examples.
# make dev PORT=3001 serves the API on another port (default 3000).
dev: venv
	PORT=$(or $(PORT),3000) $(RUN) -m sandbox.dev

# Performance figures (not part of make test): writes bench/results.json and prints a table.
bench: venv
	$(RUN) -m bench.run

openapi: venv
	$(RUN) -m sandbox.stack.openapi > docs/openapi.json

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PY) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)
	touch $(SAM_STAMP)

# cfn-lint with AWS's serverless rules (cfn-lint-serverless) always; `sam validate --lint` too once the
# SAM venv exists (`make build` creates it).
validate: venv
	$(BIN)/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules
	@if [ -x $(SAM) ]; then \
	  echo "$(SAM) validate --lint"; \
	  AWS_REGION=$${AWS_REGION:-$${AWS_DEFAULT_REGION:-us-east-1}} $(SAM) validate --lint; \
	else echo "($(SAM) not installed: skipped sam validate; run make build first)"; fi

# Builds the layer and the functions for arm64 into .aws-sam/ (cached/parallel: samconfig.toml).
build: $(SAM_STAMP)
	AWS_REGION=$${AWS_REGION:-$${AWS_DEFAULT_REGION:-us-east-1}} $(SAM) build
