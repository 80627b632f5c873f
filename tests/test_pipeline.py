"""The whole pipeline on real photographs: CIFAR-10/100 (the exact pixels of ../shared/data/cifar-mini).

The repository is copied to a temporary folder, params.yaml gets a tiny profile that points the
data root at the mini set (official checksum verification off, since those files are subsets),
and `dvc repro` runs every stage and every notebook. Skipped when ../shared/data is absent.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT.parent / "shared" / "data" / "cifar-mini"

pytestmark = pytest.mark.skipif(not MINI.is_dir(), reason="../shared/data/cifar-mini is not present")

TINY = {
    "data": {"datasets": ["cifar10", "cifar100"], "root": str(MINI), "verify": False, "limit": None},
    "train": {"runs": ["resnet18", "sdnet18", "sdnet18_all_noshortcut"], "width": 8, "epochs": 1, "batch_size": 128, "lr": 0.05,
              "momentum": 0.9, "nesterov": True, "weight_decay": 0.0005, "schedule": "cosine", "eta_min": 0.000001, "lam": 0.1,
              "n_steps": 2, "seed": 0, "device": "cpu", "progress": False, "per_run": {}},
    "csc_layer": {"max_steps": 20, "lambdas": [0.0, 0.1, 0.5], "images": 16},
    "robustness": {"runs": ["resnet18", "sdnet18"], "noises": ["gaussian", "shot", "impulse", "speckle"], "severities": [1, 5],
                   "lambdas": [0.1, 0.5, 1.0], "test_images": 200, "seed": 0},
    "adversarial": {"runs": ["resnet18", "sdnet18"], "lambdas": [0.1, 0.5], "linf_eps": [0.0313725490], "l2_eps": [0.5], "steps": 2,
                    "step_size_fraction": 0.5, "test_images": 64, "seed": 0},
    "visualize": {"images": 2},
}


def skip_local_state(folder: str, names: list[str]) -> set[str]:
    """What the copy leaves out: the virtualenv, git and DVC state, results, and the top-level
    data/ folder (not sdnet/data, the package's data module)."""
    local = {".venv", ".git", ".dvc", "reports", "dvc.lock", "__pycache__", ".pytest_cache"}
    return {n for n in names if n in local or (Path(folder) == ROOT and n == "data")}


def test_dvc_repro_on_cifar_mini(tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=skip_local_state)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["profile"] = "mini"
    params["profiles"]["mini"] = TINY
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=work, env=env, check=True)
    result = subprocess.run([*dvc, "repro"], cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    reports = work / "reports" / "mini"
    for run in TINY["train"]["runs"]:
        summary = json.loads((reports / "metrics" / f"train_{run}.json").read_text())
        assert set(summary["datasets"]) == {"cifar10", "cifar100"} and summary["trained"]
        assert summary["datasets"]["cifar10"]["dataset"] == "CIFAR-10"
    assert json.loads((reports / "metrics" / "train_sdnet34.json").read_text())["trained"] is False  # listed, not run
    for nb in ["01_csc_layer", "02_classification", "03_noise_robustness", "04_adversarial", "05_visualization"]:
        assert (reports / "notebooks" / f"{nb}.ipynb").is_file()
    table1 = (reports / "tables" / "02_classification" / "table1.md").read_text()
    assert "CIFAR-100" in table1 and "not run at profile 'mini'" in table1
    results = (reports / "RESULTS.md").read_text()
    assert "CIFAR-10" in results and "PGD" in results
    # A second `dvc repro` would do nothing. (Only dvc.yaml's stages: data.dvc pins the official
    # CIFAR files, which are not in data/ here, so DVC rightly reports that one as missing.)
    status = subprocess.run([*dvc, "status", "dvc.yaml"], cwd=work, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
