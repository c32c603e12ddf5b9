# Two entry points for a fresh machine; each makes its own virtual environment in .venv.
#   make demo   set up the core install (no torch, Ray, datasets: the demo needs none), run `lineage demo`
#   make test   set up everything (embedding model, Hugging Face, Ray, test tools), run the whole test suite
# Afterwards `lineage` is .venv/bin/lineage (or `source .venv/bin/activate`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=

.PHONY: demo quickstart test chromium bench-ingest bench-fresh-demo clean

# The core: what `lineage` and `lineage demo` import. uv installs, under pip's configuration
# (scripts/uv_install.py): the full install takes ~18 s where pip took ~97 (benchmarks/install.py).
$(VENV)/.core: pyproject.toml Makefile scripts/uv_install.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	# Bytecode compiled now, as pip does: where PYTHONDONTWRITEBYTECODE is set (this machine sets it) no process
	# could cache it, and each `lineage` command would compile its imports again.
	$(PY) scripts/uv_install.py --quiet --compile-bytecode -e .
	touch $@

$(VENV)/.installed: $(VENV)/.core
	# CPU torch, pinned: a bare `torch` would pull gigabytes of CUDA packages.
	$(PY) scripts/uv_install.py --quiet torch==2.13.0 -e '.[dev,embed,hf,ray]'
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/lineage demo ./lineage-demo --force $(DEMO_ARGS)
	@echo "lineage is installed in $(VENV): run $(VENV)/bin/lineage --store lineage-demo models (or first: source $(VENV)/bin/activate)"

quickstart: $(VENV)/.core
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/quickstart.sh

# The HTML report tests render in a real browser: Debian's chromium, installed here when missing.
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The suite runs on every CPU, at most 4 (pytest-xdist; see tests/conftest.py for what the workers share);
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 4 ? 4 : n )))

test: $(VENV)/.installed chromium
	$(VENV)/bin/ruff check lineage tests benchmarks fixtures
	# The tests start many `lineage` processes and Ray workers: with PYTHONDONTWRITEBYTECODE (this machine sets
	# it) each would compile its imports again (the suite took 27% longer). Unset, the first import of a module
	# caches its bytecode in .venv; compiling only what gets imported beats compiling torch, Ray and
	# transformers whole at install (~29 s).
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

bench-ingest: $(VENV)/.installed
	$(PY) benchmarks/ingest.py

# A fresh clone of this repository, timed to the demo's last line (see the script for its options).
bench-fresh-demo:
	$(PYTHON) benchmarks/fresh_clone_demo.py

clean:
	rm -rf $(VENV) quickstart-store lineage-demo
