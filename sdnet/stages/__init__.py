"""The commands of the pipeline's computing stages (dvc.yaml), one module each.

    python -m sdnet.stages.train sdnet18     # train@sdnet18: every dataset and seed of the profile
    python -m sdnet.stages.noise             # sweep_noise: accuracy vs test-time lambda under noise
    python -m sdnet.stages.attack            # attack: robust accuracy vs test-time lambda
    python -m sdnet.stages.summarize         # summarize: RESULTS.md from the chapters' tables

Each reads the active profile of params.yaml (``--profile`` overrides it) through
:func:`sdnet.study.load_study` and writes under ``reports/<profile>/``. The chapters' notebooks
read what these write; the notebooks' own stages run them with papermill. A stage module imports
only what its stage needs, because dvc.yaml lists exactly those modules as the stage's
dependencies (tests/test_pipeline_deps.py checks it).
"""
