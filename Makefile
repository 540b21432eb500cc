# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PYTEST_ARGS ?=

.PHONY: demo test install bench clean

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "remaster needs Python 3.10 or newer"' \
	  || { echo "error: $(PYTHON) is too old; install Python 3.11 (Debian: apt-get install python3 python3-venv)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) \
	  || { echo "error: cannot create $(VENV); on Debian run: apt-get install python3-venv"; exit 1; }

# The constraints file pins the torch pair; every plugin in plugins/ is installed
# editable so its entry points are live. Runtime packages whose declared
# dependencies are wrong for us (requirements-nodeps.txt: facexlib wants the GUI
# OpenCV) and the reference implementations the tests compare with
# (requirements-peers.txt) go in without their declared dependencies, which would
# bring the GUI OpenCV and a second torch; each file says why.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt requirements-nodeps.txt requirements-peers.txt \
          $(wildcard plugins/*/pyproject.toml)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt \
	  --editable '.[test]' $(addprefix --editable ./,$(PLUGIN_DIRS))
	$(BIN)/python -m pip install --quiet --constraint constraints.txt \
	  --no-deps --requirement requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --constraint constraints.txt \
	  --no-deps --no-build-isolation --requirement requirements-peers.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache
