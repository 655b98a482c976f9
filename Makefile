# keypolicy: the two commands of the README, and a few for developers.
# Each target creates (or reuses) the local virtual environment .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keypolicy needs Python 3.11 or newer: set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

POLICIES := policies/clinic-separate.yaml policies/clinic-merged.yaml policies/clinic-single.yaml

## demo: check the clinic policies, then simulate a hospital weekday through all three
demo: $(STAMP)
	$(BIN)/keypolicy check --quiet $(POLICIES)
	$(BIN)/keypolicy compare $(POLICIES) --traffic simulations/clinic-day.yaml \
		--json reports/clinic-compare.json --out reports/clinic-compare.html
	@echo "open reports/clinic-compare.html (the summary is in reports/clinic-compare.json)"

## test: the whole test suite, then ruff and mypy
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
