# Two entry points for a fresh machine; both create (or reuse) the virtualenv .venv first.
#   make repro   set up everything, then run the whole pipeline (dvc repro)
#   make test    set up everything, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
# dvc.yaml's commands call `python`, `papermill`: the virtualenv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro test clean-venv

setup: $(STAMP)

# Re-run the install whenever the pins change. torchattacks goes in with --no-deps: it pins
# requests~=2.25 (2021), which would drag the notebook stack back years; what it really needs is
# already installed by requirements.txt.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

# 1. unit tests, plus the whole pipeline on the real CIFAR mini set when ../shared/data exists;
# 2. the pipeline at the default (quick) scale; 3. nbval re-executes its notebooks and compares
#    the cells tagged nbval-check-output (rounded key results) with what the pipeline wrote.
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider
test: $(STAMP)
	$(PY) -m pytest
	dvc repro
	$(PY) -m pytest $(NBVAL) reports/quick/notebooks

clean-venv:
	rm -rf $(VENV)
