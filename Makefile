# Two entry points for a fresh machine; both create (or reuse) the virtualenv .venv first.
#   make repro   set up everything, then run the whole pipeline (dvc repro)
#   make test    set up everything, then run the test suite
# Both print a line per step; the full output of each step is kept under logs/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOGS := logs
export DVC_NO_ANALYTICS := 1
# dvc.yaml's commands call `python`, `papermill`: the virtualenv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro test unit e2e notebooks clean-venv

setup: $(STAMP)

# Re-run the install whenever the pins change. torchattacks goes in with --no-deps: it pins
# requests~=2.25 (2021), which would drag the notebook stack back years; what it really needs is
# already installed by requirements.txt.
$(STAMP): requirements.txt pyproject.toml
	@mkdir -p $(LOGS)
	@echo "setup: installing the pinned packages into $(VENV) (log: $(LOGS)/setup.log)"
	@{ test -x $(PY) || $(PYTHON) -m venv $(VENV); } > $(LOGS)/setup.log 2>&1
	@{ $(PY) -m pip install --upgrade pip && \
	   $(PY) -m pip install -r requirements.txt && \
	   $(PY) -m pip install --no-deps torchattacks==3.5.1 && \
	   $(PY) -m pip install --no-deps -e . ; } >> $(LOGS)/setup.log 2>&1 \
	  || { tail -n 30 $(LOGS)/setup.log; echo "setup FAILED: see $(LOGS)/setup.log"; exit 1; }
	@touch $(STAMP)
	@echo "setup: done"

repro: $(STAMP)
	@$(PY) -m sdnet.pipeline repro

# The test suite, in four steps:
#   unit       the package's unit tests (73 s on the 2 cores of an AMD EPYC with AVX512-BF16);
#   e2e        end to end, through the documented commands: failure modes (kills, restarts, bad
#              data and parameters), the remote-GPU workflow and the pipeline on real CIFAR pixels
#              (../shared/data, skipped when absent);
#   repro      the pipeline at the default (quick) profile;
#   notebooks  nbval re-executes its notebooks and compares the cells tagged nbval-check-output.
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider
test: unit e2e repro notebooks

unit: $(STAMP)
	@echo "unit tests:"
	@$(PY) -m pytest -q -n 2 -m "not e2e"

e2e: $(STAMP)
	@echo "end-to-end tests:"
	@$(PY) -m pytest -q -m e2e

notebooks: $(STAMP)
	@echo "notebook checks (nbval):"
	@$(PY) -m pytest -q $(NBVAL) reports/quick/notebooks

clean-venv:
	rm -rf $(VENV)
