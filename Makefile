# Two commands: `make run` and `make test`. Everything else installs itself.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

# Use uv from PATH, else bootstrap it from PyPI into .tools/ (only Python 3.11+ is assumed).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: help install run test test-faults lint typecheck pytest bench clean

help:
	@echo "make run   - start PostgreSQL/Redis (embedded unless configured), the Stripe emulator,"
	@echo "             migrate, seed, then the API and a worker (Ctrl-C stops all)"
	@echo "make test  - lint (ruff), types (mypy), tests (pytest) against real PostgreSQL/Redis"
	@echo "make test-faults - the fault suite: restarts, kills and Stripe faults on real processes"
	@echo "make bench - the benchmarks in bench/"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) sync --frozen --extra embedded

run: install
	$(UV) run --frozen support-billing run

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: install
	$(UV) run --frozen mypy

pytest: install
	$(UV) run --frozen pytest

test: lint typecheck pytest

# Real processes (own PostgreSQL and Redis servers, the emulator, APIs, workers) under faults.
test-faults: install
	$(UV) run --frozen pytest -m faults tests/faults -v

bench: install
	$(UV) run --frozen python -m bench

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache
