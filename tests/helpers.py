"""What the tests share: where the repository and the shared data are, copies of the repository,
and a tiny study (params.yaml shrunk to seconds) that the stage commands run on in-process."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"   # real images, where this machine has them (tests skip without)
MINI = SHARED / "cifar-mini"


def write_verdict_table(folder: Path, rows) -> None:
    """``folder/verdict.csv`` as a chapter writes it: rows of (claim, paper, here, verdict)."""
    folder.mkdir(parents=True)
    with (folder / "verdict.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["claim", "paper", "here", "verdict"])
        writer.writerows(rows)


def skip_local_state(folder: str, names: list[str]) -> set[str]:
    """For ``shutil.copytree(ROOT, ...)``: what a copy of the repository leaves out: the virtualenv,
    git and DVC state, results (all of reports/ but reports/earlier, which chapters read), logs, and
    the top-level data/ folder (not sdnet/data, the package's data module)."""
    local = {".venv", ".git", ".dvc", "dvc.lock", "__pycache__", ".pytest_cache", "logs"}
    if Path(folder) == ROOT / "reports":
        return {n for n in names if n != "earlier"}
    return {n for n in names if n in local or (Path(folder) == ROOT and n == "data")}


# The chapters' sections of a profile shrunk to seconds: a handful of lambdas, noise conditions and
# attacked images (every section stays, only sizes change). The in-process stage tests use them at
# the quick profile (:data:`TINY`), the whole-pipeline tests at the fast one (:func:`settings`).
TINY_CHAPTERS: dict[str, dict[str, Any]] = {
    "csc_layer": {"images": 8, "max_steps": 10},
    "robustness": {"severities": [1, 5], "lambdas": [0.1, 0.5, 1.0], "test_images": 60},
    "adversarial": {"lambdas": [0.1, 0.5], "steps": 2, "test_images": 30, "linf_eps": [0.03, 0.5], "l2_eps": [0.5, 20.0],
                    "check_linf_eps": [0.03], "check_l2_eps": [0.5], "check_steps": 4, "check_images": 8, "sweep_linf_eps": [0.03, 0.5]},
    "visualize": {"images": 2},
}

# The quick profile shrunk to seconds: tiny networks on a few hundred synthetic images, ResNet-18
# and SDNet-18 only, the rivals at two strengths.
TINY: dict[str, dict[str, Any]] = {
    "data": {"datasets": ["synthetic"], "limit": 256},
    "train": {"runs": ["resnet18", "sdnet18"], "width": 8, "epochs": 1, "batch_size": 64, "per_run": {}, "device": "cpu", "progress": False},
    **TINY_CHAPTERS,
    "robustness": {**TINY_CHAPTERS["robustness"], "blur": [0.5, 1.0], "median": [1]},
    "adversarial": {**TINY_CHAPTERS["adversarial"], "blur": [0.5]},
}


def _flow(value: Any) -> str:
    """A value as `dvc exp run -S` / `sdnet.pipeline run --set` read it (YAML flow style)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def settings(profile: str, sections: dict[str, dict[str, Any]]) -> list[str]:
    """``sections`` of ``profile`` as ``profiles.<profile>.<section>.<key>=<value>`` settings."""
    return [f"profiles.{profile}.{section}.{key}={_flow(value)}" for section, values in sections.items() for key, value in values.items()]


def repository_params() -> dict[str, Any]:
    """The repository's params.yaml, as a mapping to edit."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def write_repository(folder: Path, params: dict[str, Any]) -> Path:
    """A repository the study finds at ``folder``: ``params`` as its params.yaml, beside a link to
    the package (sdnet.params.repo_root looks for both). Written again, it replaces params.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "sdnet").exists():
        (folder / "sdnet").symlink_to(ROOT / "sdnet")
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def tiny_params(**sections: dict[str, Any]) -> dict[str, Any]:
    """The repository's params.yaml with the quick profile shrunk (:data:`TINY`), then ``sections``
    (e.g. ``train={"runs": ["sdnet18"]}``) merged into the quick profile's sections."""
    params = repository_params()
    quick = params["profiles"]["quick"]
    for name, values in [*TINY.items(), *sections.items()]:
        quick[name] = {**quick.get(name, {}), **values}
    params["profile"] = "quick"
    return params


def write_tiny_repository(folder: Path, **sections: dict[str, Any]) -> Path:
    """:func:`write_repository` with the tiny quick profile (:func:`tiny_params`): the stage
    commands run on it in-process."""
    return write_repository(folder, tiny_params(**sections))
