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

.PHONY: setup repro test unit e2e notebooks tree-before tree-after clean-venv

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
#   unit       the package's unit tests, each stage command in-process included (2 min on the 2
#              cores of an AMD EPYC with AVX512-BF16, 5 on an AVX2-only Zen; the whole of `make test`
#              from a fresh clone: 16 min on the first, 21 on the second);
#   e2e        end to end, through the documented commands: failure modes (kills, restarts, bad
#              data and parameters), the remote-GPU workflow and the pipeline on real CIFAR pixels
#              (../shared/data, skipped when absent);
#   repro      the pipeline at the default (quick) profile;
#   notebooks  nbval re-executes its notebooks (on a copy of the quick study: they write tables,
#              figures and metrics) and compares the cells tagged nbval-check-output;
# and the working tree is as the suite found it (tree-before / tree-after: tests work on copies).
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with $(CURDIR)/tests/nbval_sanitize.cfg -p no:cacheprovider
TREE = { git status --porcelain --untracked-files=all; git diff; git ls-files -z --others --exclude-standard | xargs -0 -r cat; }
test: tree-before unit e2e repro notebooks tree-after

unit: $(STAMP)
	@echo "unit tests:"
	@$(PY) -m pytest -q -n 2 -m "not e2e"

# Two at a time: most of an end-to-end test is a subprocess waiting on Python start-up, DVC or a
# notebook kernel. One torch thread per subprocess: two 2-thread runs on 2 cores spin against each
# other (the whole group took longer than one at a time: 23 of 32 tests in 18 minutes). The longest
# tests are collected first (tests/conftest.py) and an idle worker steals what the other has queued
# (worksteal): a long test is never the last one started.
e2e: $(STAMP)
	@echo "end-to-end tests:"
	@OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist worksteal -m e2e

notebooks: $(STAMP)
	@echo "notebook checks (nbval):"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  git ls-files -z params.yaml sdnet reports/quick | xargs -0 cp --parents -t "$$tmp" && \
	  cd "$$tmp" && $(abspath $(PY)) -m pytest -q $(NBVAL) reports/quick/notebooks

tree-before:
	@mkdir -p $(LOGS) && $(TREE) | sha256sum > $(LOGS)/tree-before.sha256 && git status --porcelain > $(LOGS)/tree-before.txt

tree-after:
	@$(TREE) | sha256sum | cmp -s - $(LOGS)/tree-before.sha256 \
	  || { echo "the test suite changed the working tree:"; git status --porcelain | diff $(LOGS)/tree-before.txt - ; exit 1; }
	@echo "working tree: as the tests found it"

clean-venv:
	rm -rf $(VENV)
