# keypolicy: the two commands of the README, and a few for developers.
# Each target creates (or reuses) the local virtual environment .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keypolicy needs Python 3.11 or newer: set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The compiled build: the simulator's hot modules compiled with mypyc in place (about a minute).
# keypolicy uses them only while they match their sources (src/keypolicy/_native.py); if they
# cannot be built (no C compiler), everything runs as plain Python, only slower.
NATIVE := src/keypolicy/_compiled.json
HOT := $(wildcard src/keypolicy/core/*.py src/keypolicy/state/*.py src/keypolicy/upstream/*.py) \
	src/keypolicy/sim/arrival.py src/keypolicy/sim/driver.py src/keypolicy/metrics.py src/keypolicy/records.py \
	src/keypolicy/_native.py

$(NATIVE): $(STAMP) $(HOT)
	-@$(BIN)/python -c 'import sys; from keypolicy._native import build; sys.exit(build())'

POLICIES := policies/clinic-separate.yaml policies/clinic-merged.yaml policies/clinic-single.yaml

## demo: check the clinic policies, then simulate a hospital weekday through all three
demo: $(STAMP) $(NATIVE)
	$(BIN)/keypolicy check --quiet $(POLICIES)
	$(BIN)/keypolicy compare $(POLICIES) --traffic simulations/clinic-day.yaml \
		--json reports/clinic-compare.json --out reports/clinic-compare.html
	@echo "open reports/clinic-compare.html (the summary is in reports/clinic-compare.json)"

## test: the whole test suite on the compiled build, again on plain Python, then ruff and mypy
test: $(STAMP) $(NATIVE)
	$(BIN)/python -m pytest -q
	KEYPOLICY_PURE=1 $(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

## browser: Debian's chromium for the report's browser tests (apt-get, as root; CI runs it)
browser:
	@command -v chromium >/dev/null || { \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }
	@command -v chromium >/dev/null && echo "chromium: $$(command -v chromium)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build $(NATIVE)
	find src -name '*.so' -delete
