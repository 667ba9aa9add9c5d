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

# setup.py builds the compiled modules in place: rebuilt when their sources change.
BUILD_INPUTS := pyproject.toml constraints.txt setup.py service/redaction/_fastscan.c \
	service/knowledge/_vectorscan.c

$(VENV)/.runtime: $(BUILD_INPUTS) | $(VENV)/bin/python
	$(PIP) -c constraints.txt -e .
	touch $@

$(VENV)/.dev: $(BUILD_INPUTS) | $(VENV)/bin/python
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

# Proving ground (docs/proving.md). `fuzz`: at least 5,000 schemathesis cases over UDS, TLS and the
# admin socket. `soak`: 50 clients x 10 Hz for SOAK_SECS (default 600) against a real service.
FUZZ_EXAMPLES ?= 250
SOAK_SECS ?= 600
fuzz: $(VENV)/.dev
	PATINA_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PATINA_FUZZ_MIN_CASES=2000 \
		$(BIN)/pytest tests/proving/test_fuzz.py -p no:cacheprovider -s --timeout 3600 $(PYTEST_ARGS)

soak: $(VENV)/.dev
	$(BIN)/python bench/soak/soak.py --duration $(SOAK_SECS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Containers (tests/containers; `make test` runs all of it). See docs/containers.md.
.PHONY: image container-checks container-e2e container-bench
image: ## build the image with podman (Docker format keeps the HEALTHCHECK)
	BUILDAH_FORMAT=docker podman build --format docker -t localhost/patina-serve:latest .

container-checks: $(VENV)/.dev ## hadolint, compose spec + config, helm lint/template/validate
	$(BIN)/pytest tests/containers -m "not container"

container-e2e: $(VENV)/.dev system-deps ## build the image, bring compose up, test from the host
	$(BIN)/pytest tests/containers -m container

container-bench: $(VENV)/.dev system-deps ## image size and seconds from `up` to healthy
	$(BIN)/python bench/containers/up_bench.py
