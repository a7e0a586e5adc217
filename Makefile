# The two commands of the README's quick start, and the pieces they install by themselves.
#   make demo   - the full local stack, end to end
#   make test   - lint, the whole test suite, and the static security analysis of infra/
#   make console - the demo's BC ⇄ Sales story, then its operators' console kept open until Ctrl-C
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AZURITE := .tools/azurite/node_modules/.bin/azurite-table
CHECKOV := .tools/checkov-venv/bin/checkov
UV := .tools/uv-venv/bin/uv
# Debian's chromium, which Playwright drives in the console's browser tests (tests/browser; no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
LOCK_FLAGS := --quiet --generate-hashes --universal --python-version 3.11

.PHONY: demo console chromium test lint bench bench-fo bench-capacity bench-capacity-100k bench-capacity-1m chaos install azurite \
	clean infra-check lock

install: $(STAMP)

# The dev lock holds the run-time lock too. Hash mode forbids an editable line, so the project itself comes
# after, with no dependencies of its own: everything it needs is in the lock.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Regenerate the locks from requirements*.in: exact versions and hashes, for every platform (markers keep
# Windows-only packages out of a Linux install), Python 3.11 as on Azure. A pin already in a lock is kept;
# to move one: make lock LOCK_ARGS="--upgrade-package httpx" (or --upgrade for all). uv gets its own venv so
# that locking never depends on the lock it rewrites.
lock: $(UV)
	$(UV) pip compile $(LOCK_FLAGS) $(LOCK_ARGS) --custom-compile-command "make lock  # edit requirements.in" \
		requirements.in -o requirements.txt
	$(UV) pip compile $(LOCK_FLAGS) $(LOCK_ARGS) --custom-compile-command "make lock  # edit requirements-dev.in" \
		requirements-dev.in -o requirements-dev.txt

$(UV):
	$(PYTHON) -m venv .tools/uv-venv
	.tools/uv-venv/bin/python -m pip install --quiet "uv==0.13.9"

azurite: $(AZURITE)

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .tools/azurite azurite@3

lint: $(STAMP)
	$(PY) -m ruff check .

chromium: $(CHROMIUM)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the browser tests need Debian's chromium at $(CHROMIUM)"; exit 1; }
	$(SUDO) apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

test: $(STAMP) $(AZURITE) $(CHECKOV) $(CHROMIUM)
	$(PY) -m ruff check .
	$(PY) -m pytest
	$(MAKE) --no-print-directory infra-check

demo: $(STAMP) $(AZURITE)
	$(PY) -m scripts.demo

console: $(STAMP) $(AZURITE)
	$(PY) -m scripts.demo --console

bench: $(STAMP) $(AZURITE)
	$(PY) -m bench.emulator_business_central
	$(PY) -m bench.emulator_dataverse
	$(PY) -m bench.emulator_finance_operations
	$(PY) -m bench.full_sync
	$(MAKE) --no-print-directory bench-fo
	$(MAKE) --no-print-directory bench-capacity

# Finance and Operations: full sync of 10 000 customers + content catch-up, data event latency at 50/s.
bench-fo: $(STAMP) $(AZURITE)
	$(PY) -m bench.full_sync_fo
	$(PY) -m bench.event_latency_fo

# Capacity (issue 12), service protection on: full sync of 10 000 records BC → Dataverse, Dataverse → BC and
# F&O → Dataverse at 0 and 50 ms, beside the naive baseline and the capacity bound, then the live path at 10, 50
# and 200 changes/s. Writes its sections of bench/RESULTS.md; targets are printed, not asserted.
bench-capacity: $(STAMP) $(AZURITE)
	$(PY) -m bench.capacity --matrix --records 10000

# The same matrix at 100 000 records (long: about an hour or more), without the live path.
bench-capacity-100k: $(STAMP) $(AZURITE)
	$(PY) -m bench.capacity --matrix --no-live --records 100000

# Peak RSS of one full sync of 1 000 000 records BC → Dataverse (very long; the emulators hold a million rows
# each, and Azurite a million couplings in memory, hence its larger Node.js heap). Add MAX_SECONDS=1800 to stop
# the sync early and measure RSS on a shortened run.
bench-capacity-1m: $(STAMP) $(AZURITE)
	NODE_OPTIONS=--max-old-space-size=8192 $(PY) -m bench.capacity --records 1000000 --flows to_crm --latency-ms 0 \
		--memory-only \
		$(if $(MAX_SECONDS),--max-seconds $(MAX_SECONDS))

# Chaos: 10 000 random operations on both sides under faults, judged from both systems' stores (issue 13).
# Writes its table to bench/RESULTS.md; fails when anything diverged, was duplicated, lost or orphaned.
chaos: $(STAMP) $(AZURITE)
	$(PY) -m bench.chaos --operations $(or $(OPERATIONS),10000) --records $(or $(RECORDS),1000)

# Static security analysis of infra/ (Bicep). checkov pins many packages, so it gets its own venv, never .venv.
# Findings are fixed in the templates or skipped inline with `// checkov:skip=CKV_...: reason`.
$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov-venv
	.tools/checkov-venv/bin/python -m pip install --quiet "checkov==3.3.30"

infra-check: $(CHECKOV)
	$(CHECKOV) --framework bicep -d infra --skip-download --compact --quiet

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache
