# One entry point for set-up, tests, demo and benchmarks; every target creates .venv when missing.
PY ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test unit lint demo dev bench build validate clean browser

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

test: venv browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest tests/unit

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache
