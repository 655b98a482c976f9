# keypolicy: the two commands of the README, and a few for developers.
# Each target creates (or reuses) the local virtual environment .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean browser wheel-check print-hot

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
# The compiled modules are listed once, in _native.py's COMPILED ("keypolicy.core.engine", ...):
# their sources are read from there.
COMPILED := $(shell sed -n 's/^    "keypolicy\.\([a-z_.]*\)",$$/\1/p' src/keypolicy/_native.py)
HOT := $(foreach m,$(COMPILED),src/keypolicy/$(subst .,/,$(m)).py) src/keypolicy/_native.py

$(NATIVE): $(STAMP) $(HOT)
	-@$(BIN)/python -c 'import sys; from keypolicy._native import build; sys.exit(build())'

POLICIES := policies/clinic-separate.yaml policies/clinic-merged.yaml policies/clinic-single.yaml

## demo: check the clinic policies, then simulate a hospital weekday through all three
demo: $(STAMP) $(NATIVE)
	$(BIN)/keypolicy check --quiet $(POLICIES)
	$(BIN)/keypolicy compare $(POLICIES) --traffic simulations/clinic-day.yaml \
		--json reports/clinic-compare.json --out reports/clinic-compare.html
	@echo "open reports/clinic-compare.html (the summary is in reports/clinic-compare.json)"

print-hot:  # the sources of the compiled modules, as make sees them
	@echo $(HOT)

## test: the whole test suite on the compiled build, again on plain Python, then ruff and mypy
test: $(STAMP) $(NATIVE)
	$(BIN)/python -m pytest -q
	KEYPOLICY_PURE=1 $(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

## wheel-check: build the wheel as `pip install` does (hatch_build.py compiles it with mypyc),
## install it in a fresh virtual environment and run the demo there; fails unless it runs compiled.
## A few minutes, most of it mypyc. WHEEL_CHECK_DIR=path keeps the wheel and the environment there.
WHEEL_CHECK_DIR ?=
wheel-check: $(STAMP)
	@set -eu; \
	if [ -n "$(WHEEL_CHECK_DIR)" ]; then tmp="$(abspath $(WHEEL_CHECK_DIR))"; rm -rf "$$tmp"; mkdir -p "$$tmp"; \
	else tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; fi; \
	kp="$$tmp/venv/bin/keypolicy"; t0=$$(date +%s); \
	echo "wheel-check: building the wheel in $$tmp (mypyc: a few minutes)"; \
	$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$$tmp/dist" .; \
	t1=$$(date +%s); ls "$$tmp"/dist; \
	$(BIN)/python -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$$tmp"/dist/keypolicy-*.whl; \
	t2=$$(date +%s); cd "$$tmp"; \
	version=$$(env -u KEYPOLICY_PURE "$$kp" --version); echo "wheel-check: $$version"; \
	case "$$version" in *"(compiled with mypyc: "*) ;; \
	*) echo "wheel-check: FAILED: the installed wheel does not run compiled" >&2; exit 1;; esac; \
	env -u KEYPOLICY_PURE "$$kp" check --quiet $(addprefix $(CURDIR)/,$(POLICIES)); \
	env -u KEYPOLICY_PURE "$$kp" compare $(addprefix $(CURDIR)/,$(POLICIES)) \
		--traffic $(CURDIR)/simulations/clinic-day.yaml \
		--json "$$tmp/clinic-compare.json" --out "$$tmp/clinic-compare.html" >"$$tmp/compare.log"; \
	tail -n 3 "$$tmp/compare.log"; test -s "$$tmp/clinic-compare.json"; test -s "$$tmp/clinic-compare.html"; \
	t3=$$(date +%s); \
	engine=$$("$$tmp/venv/bin/python" -c 'from keypolicy import _native; print(_native._source("keypolicy.core.engine"))'); \
	cp "$$engine" "$$tmp/engine.py.orig"; echo "# edited after the build" >>"$$engine"; \
	stale=$$(env -u KEYPOLICY_PURE "$$kp" --version); echo "wheel-check: after editing $$engine: $$stale"; \
	case "$$stale" in *"plain Python: sources changed since the build (keypolicy.core.engine)"*) ;; \
	*) echo "wheel-check: FAILED: an edited source did not turn the compiled build off" >&2; exit 1;; esac; \
	cp "$$tmp/engine.py.orig" "$$engine"; \
	echo "wheel-check: passed: wheel built in $$((t1 - t0)) s, installed in $$((t2 - t1)) s, demo ran compiled in $$((t3 - t2)) s"

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
