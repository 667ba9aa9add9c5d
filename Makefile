# The two commands: `make serve` and `make test`. Both bootstrap .venv from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: serve test venv dev system-deps lint typecheck openapi docs clean

serve: $(VENV)/.runtime ## run the service on its embedded defaults (socket under ~/.patina/run)
	$(BIN)/patina serve

test: $(VENV)/.dev system-deps lint typecheck ## the whole suite, as CI runs it
	$(BIN)/pytest $(PYTEST_ARGS)

venv: $(VENV)/.runtime
dev: $(VENV)/.dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -c constraints.txt -e .
	touch $@

$(VENV)/.dev: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) -c constraints.txt -e '.[dev]'
	touch $@ $(VENV)/.runtime

# Debian packages and podman the tests use (age, promtool, podman, docker-compose, ...).
system-deps:
	bash scripts/install-system-deps.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check service tests bench scripts
	$(BIN)/ruff format --check service tests bench scripts

typecheck: $(VENV)/.dev
	$(BIN)/mypy

openapi: $(VENV)/.runtime ## regenerate the committed openapi.json
	$(BIN)/patina openapi > openapi.json

docs: $(VENV)/.runtime ## regenerate the README's settings table
	$(BIN)/python scripts/update_readme_settings.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
