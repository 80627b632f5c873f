"""The committed results of the `cpu` profile are what the committed code and parameters produce.

`reports/cpu/dvc.lock` is the lock file DVC wrote when it ran the study (README, "Results"): the
hashes of every stage's code, parameters and outputs. In a copy of the repository with that lock
file in place, DVC must find the chapters' stages up to date: the notebooks, tables, figures,
metrics and RESULTS.md under reports/cpu/ are the outputs it recorded, made by today's code. (The
trained models are DVC-cached, not committed: the stages that read them are checked through
their outputs, which the chapters read.) A change to a module the study runs fails this test
until the study is run again.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdnet.pipeline import set_params

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "reports" / "cpu" / "dvc.lock"
CHECKED = ["explain_layer", "tabulate_accuracy", "tabulate_noise", "tabulate_attacks", "summarize"]

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not LOCK.is_file(), reason="no committed cpu results")]


def test_the_committed_cpu_results_are_those_of_the_committed_code(tmp_path):
    work = tmp_path / "repo"
    local = {".venv", ".git", ".dvc", "dvc.lock", "__pycache__", ".pytest_cache", "logs", "models"}
    shutil.copytree(ROOT, work, ignore=lambda folder, names: {n for n in names if n in local or (Path(folder) == ROOT and n == "data")})
    lock = yaml.safe_load(LOCK.read_text())
    # params.yaml as it was for that run: the values the lock recorded (e.g. the JPEG copy as data)
    recorded = {key: value for stage in lock["stages"].values() for key, value in stage.get("params", {}).get("params.yaml", {}).items()}
    assert recorded["profile"] == "cpu"
    set_params(work, [f"{key}={json.dumps(value)}" for key, value in recorded.items()])  # JSON is YAML
    shutil.copy(LOCK, work / "dvc.lock")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=work, env=env, check=True)
    status = subprocess.run([sys.executable, "-m", "dvc", "status", *CHECKED], cwd=work, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert "up to date" in status.stdout, (
        "reports/cpu/ is not what the committed code and params.yaml produce; rerun the study (README, 'Results'):\n" + status.stdout
    )
