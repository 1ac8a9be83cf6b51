# The two commands: `make demo` (main job) and `make test` (all tests). Each installs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= work/demo
PYTEST_ARGS ?=

.PHONY: install test test-fast demo benchmark clean

install: $(STAMP)

$(STAMP): setup.py scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -ra tests $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow" tests $(PYTEST_ARGS)

demo: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH OUT=$(DEMO_DIR) bash examples/refinement_nat/demo.sh

clean:
	rm -rf $(VENV) build *.egg-info
