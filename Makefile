# Every target bootstraps first (idempotent: a venv in .venv, the package, redis-server).
.DEFAULT_GOAL := help
SHELL := bash

VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
DEV_ARGS ?=

.PHONY: help bootstrap dev test lint format docs docs-serve bench wheel-check range lock clean distclean

help: ## Show this list
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) \
		| awk -F':.*## ' '{ printf "  make %-10s %s\n", $$1, $$2 }'
	@echo "  (PYTEST_ARGS='-m \"not integration\"' make test; DEV_ARGS='...' make dev)"

bootstrap: ## Create .venv, install eventfwd with dev tools, install redis-server if missing
	@scripts/bootstrap

dev: bootstrap ## Run the whole stack locally (private Redis, fake Moloco, worker, beat); Ctrl-C stops
	$(BIN)/eventfwd dev $(DEV_ARGS)

test: bootstrap ## Run the test suite (starts its own redis-server, sink, worker and beat)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: bootstrap ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: bootstrap ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

wheel-check: bootstrap ## Build the wheel; try it in a throwaway project (web side alone, then the fleet)
	.ci/wheel-check

range: bootstrap ## Celery contract and delivery tests at the lowest and highest Celery/kombu allowed
	.ci/celery-range

lock: bootstrap ## Regenerate constraints.txt from pyproject.toml (after changing a dependency)
	scripts/lock

docs: bootstrap ## Regenerate docs/reference from the code and build the site into site/ (strict)
	@$(BIN)/python -c 'import material, mkdocs' 2>/dev/null || $(BIN)/pip install --quiet -e '.[docs]'
	$(BIN)/python scripts/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: docs ## Serve the docs at http://localhost:8000/ (the alert rules' runbook_url base)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

bench: bootstrap ## Run the benchmarks (python -m bench)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean: ## Remove caches, build output and the dev stack's state (keeps .venv)
	rm -rf build dist site *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .eventfwd-dev
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV)
