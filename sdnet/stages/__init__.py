"""The commands of the pipeline's computing stages (dvc.yaml), one module each.

    python -m sdnet.stages.train sdnet18     # train@sdnet18: every dataset and seed of the profile
    python -m sdnet.stages.evaluate sdnet18  # evaluate@sdnet18: the trained networks on the test split
    python -m sdnet.stages.noise             # sweep_noise: accuracy vs test-time lambda under noise
    python -m sdnet.stages.attack            # attack: robust accuracy vs test-time lambda
    python -m sdnet.stages.summarize         # summarize: RESULTS.md from the chapters' tables

Each reads the active profile of params.yaml (``--profile`` overrides it) and writes under
``reports/<profile>/``; all but ``train`` through :func:`sdnet.study.load_study`
(:mod:`sdnet.stages.common`). ``train`` reads params.yaml with :mod:`sdnet.params` alone: beside
that, it imports only the code that decides a network's weights (:func:`sdnet.provenance.weights_code`),
so this package file imports no sdnet module. The chapters' notebooks
read what these write; the notebooks' own stages run them with papermill. A stage module imports
only what its stage needs, because dvc.yaml lists exactly those modules as the stage's
dependencies (tests/test_pipeline_deps.py checks it).
"""

import importlib.util
import sys

# DVC runs a stage's `python` from the PATH of the shell it was started in: outside the project's
# environment that is a Python without its packages, which would fail deep inside a stage. Every
# stage module imports this package first, so the check happens before any work.
NEEDED = ("torch", "numpy", "yaml", "pandas")
if missing := [name for name in NEEDED if importlib.util.find_spec(name) is None]:
    sys.exit(f"error: {sys.executable} has no {', '.join(missing)}: the pipeline's stages run in the project's environment. "
             "Activate it first (`source .venv/bin/activate`, which `make setup` creates; conda: `conda activate sdnet`), then run dvc again.")
