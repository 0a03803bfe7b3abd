# Two commands: `make run` and `make test`. Everything else installs itself.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

# Use uv from PATH, else bootstrap it from PyPI into .tools/ (only Python 3.11+ is assumed).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: help install run test test-hostile test-faults lint typecheck pytest bench bench-quick clean reset key demo stripe-reference

help:
	@echo "make run   - start PostgreSQL/Redis (embedded unless configured), the Stripe emulator,"
	@echo "             migrate, seed, then the API and a worker (Ctrl-C stops all)"
	@echo "make test  - lint (ruff, import contracts), types (mypy), tests (pytest) on real services"
	@echo "make test-hostile - the attacks of tests/hostile/ with a long schemathesis budget"
	@echo "make test-faults - the fault suite: restarts, kills and Stripe faults on real processes"
	@echo "make bench - every scenario against its peer in one run, one table (bench/results.md);"
	@echo "             make bench-quick for a one-minute smoke run (not part of make test)"
	@echo "make key ROLE=helpdesk [NAME=me] - create an API key (admin, helpdesk or finance)"
	@echo "make demo  - the API tour against a running make run (about two minutes)"
	@echo "make reset - start from scratch: forget all data of make run (asks first)"
	@echo "make stripe-reference - regenerate the emulator's Stripe types (needs npm)"

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
	$(UV) run --frozen lint-imports --no-cache

typecheck: install
	$(UV) run --frozen mypy

pytest: install
	@tools/ensure_chromium.sh
	$(UV) run --frozen pytest

test: lint typecheck pytest

# CI runs tests/hostile/ with a small schemathesis budget (HOSTILE_MAX_EXAMPLES, default 10);
# this is the long run: every operation, each role, all checks, stateful, more examples.
test-hostile: install
	HOSTILE_MAX_EXAMPLES=$${HOSTILE_MAX_EXAMPLES:-100} $(UV) run --frozen pytest tests/hostile -q -s

ROLE ?= admin
NAME ?= $(USER)
key: install
	$(UV) run --frozen support-billing keys create --role $(ROLE) --name "$(or $(NAME),me)"

demo: install
	$(UV) run --frozen support-billing demo

reset: install
	$(UV) run --frozen support-billing reset

# Real processes (own PostgreSQL and Redis servers, the emulator, APIs, workers) under faults.
test-faults: install
	$(UV) run --frozen pytest -m faults tests/faults -v

# The bench group (businesstimedelta, pandas, py-spy) is installed for the benchmark only;
# the dj-stripe peer installs its own virtualenv (bench/peers/djstripe/) when it runs.
bench: install
	$(UV) sync --frozen --extra embedded --group bench
	$(UV) run --frozen --extra embedded --group bench python -m bench $(BENCH_ARGS)

bench-quick: BENCH_ARGS = --quick
bench-quick: bench

# The npm release of `stripe` whose TypeScript types are generated for the API version the
# Python SDK in uv.lock pins (its cjs/apiVersion.js must say so; the generator records it).
STRIPE_NPM_VERSION := 23.1.0

stripe-reference: install
	rm -rf .tools/stripe-npm && mkdir -p .tools/stripe-npm
	cd .tools/stripe-npm && npm pack --silent stripe@$(STRIPE_NPM_VERSION) && tar xzf stripe-$(STRIPE_NPM_VERSION).tgz
	$(UV) run --frozen python tools/stripe_reference.py .tools/stripe-npm/package

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache
