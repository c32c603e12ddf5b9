# Two entry points for a fresh machine; each makes its own virtual environment in .venv.
#   make demo   set up, then run `lineage demo` (the closed loop: model collapse and its cure)
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo quickstart test chromium bench-ingest clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch first, pinned: a bare `torch` would pull gigabytes of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,embed,hf,ray]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/lineage demo ./lineage-demo --force

quickstart: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/quickstart.sh

# The HTML report tests render in a real browser: Debian's chromium, installed here when missing.
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(VENV)/.installed chromium
	$(VENV)/bin/ruff check lineage tests benchmarks fixtures
	$(PY) -m pytest

bench-ingest: $(VENV)/.installed
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(VENV) quickstart-store lineage-demo
