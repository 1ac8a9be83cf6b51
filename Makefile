# The two commands: `make demo` (main job) and `make test` (all tests). Each installs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= work/demo
PYTEST_ARGS ?=

.PHONY: help install test test-fast demo clean

help:  ## list the targets (the default)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 20

install: $(STAMP)  ## create .venv and install torch, fairseq, the plugin and the data packages

$(STAMP): setup.py scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

test: install  ## run every test (what CI runs)
	$(PY) -m pytest -q -ra tests $(PYTEST_ARGS)

test-fast: install  ## the tests without the end-to-end runs
	$(PY) -m pytest -q -ra -m "not slow" tests $(PYTEST_ARGS)

demo: install  ## Bible De->En: AR teacher + refinement NAT, a small Table 3.1 (DEMO_DIR)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH OUT=$(DEMO_DIR) bash examples/refinement_nat/demo.sh

clean:  ## remove .venv and build files
	rm -rf $(VENV) build *.egg-info
