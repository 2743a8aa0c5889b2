# Wine-quality model serving. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BENTOML := $(VENV)/bin/bentoml
# The local default reads the UCI files from the shared folder when it exists.
export WINEQ_TRAIN_DATA_DIR ?= $(if $(wildcard ../shared/data/wine-quality/SHA256SUMS),$(abspath ../shared/data/wine-quality),)
export BENTOML_DO_NOT_TRACK := True
export OTEL_SDK_DISABLED ?= true

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "\033[36m%-20s\033[0m %s\n", $$1, $$2}'

# Written after a complete install: the venv is redone only when the lock or pyproject changes.
VENV_STAMP := $(VENV)/.installed

.PHONY: install
install: $(VENV_STAMP) ## Create .venv and install the locked dependencies and the project (when they changed)

$(VENV_STAMP): requirements/dev.lock pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements/dev.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.PHONY: setup
setup: ## What the tests need, where missing: apt packages (as root), venv, scanners, Docker engine, base image, Chromium
	MAKE="$(MAKE)" VENV="$(VENV)" scripts/setup.sh

.PHONY: lock
lock: ## Re-pin requirements/dev.lock from pyproject.toml (names, versions, hashes)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra serving --extra training --extra dev \
		--generate-hashes --no-header --python-version 3.11 -o requirements/dev.lock
	$(MAKE) lock-airflow

.PHONY: train
train: ## Train, evaluate and save a model store entry (wine_quality:<version>)
	$(PY) -m training train

.PHONY: train-if-missing
train-if-missing:
	$(PY) -m training ensure-model

.PHONY: evaluate
evaluate: ## Evaluate both protocols per wine type and write docs/model.md
	$(PY) -m training evaluate --output docs/model.md

HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: serve
serve: train-if-missing ## Train if no model is in the store, then serve on $(HOST):$(PORT) (the image's start)
	$(PY) -m bento.launch bento.service:WineQualityService --host $(HOST) --port $(PORT)

.PHONY: build
build: train-if-missing ## bentoml build: a bento carrying the service and the model
	$(BENTOML) build --output tag

.PHONY: lint
lint: install install-airflow ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

PYTEST_ARGS ?=

.PHONY: test
test: setup ## Set up what is missing (`make setup`), then run the whole suite (unit, integration, browser, container, infra); PYTEST_ARGS narrows it
	$(PY) -m pytest $(PYTEST_ARGS)

-include mk/*.mk
