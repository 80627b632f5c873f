"""Glue between params.yaml, dvc.yaml and the package: the commands DVC runs.

    python -m sdnet.pipeline train sdnet18          # one training stage (every dataset of the profile)
    python -m sdnet.pipeline results                # the results section of README.md

params.yaml holds ``profile`` (the active scale) and ``profiles: {quick: ..., paper: ...}``; every
stage and notebook reads the section of the active profile, so switching scale is
``dvc exp run -S profile=paper`` and editing the inactive profile reruns nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from sdnet.config import ConfigError, TrainConfig

# Training runs of the pipeline: run name -> (model, shortcut). The -All model without shortcuts
# is its own run because the visualisation chapter needs it.
RUNS: dict[str, tuple[str, bool]] = {
    "resnet18": ("resnet18", True),
    "resnet34": ("resnet34", True),
    "sdnet18": ("sdnet18", True),
    "sdnet34": ("sdnet34", True),
    "sdnet18_all": ("sdnet18_all", True),
    "sdnet34_all": ("sdnet34_all", True),
    "sdnet18_all_noshortcut": ("sdnet18_all", False),
}


def repo_root(start: str | Path | None = None) -> Path:
    """The folder holding params.yaml, searched upwards from ``start`` (default: the cwd)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() and (folder / "sdnet").is_dir():
            return folder
    raise FileNotFoundError(f"no params.yaml above {here}: run from inside the sdnet repository")


def load_params(profile: str | None = None, root: str | Path | None = None) -> dict[str, Any]:
    """The active profile's section of params.yaml (``profile`` overrides the file's choice)."""
    root = repo_root(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    name = profile or params["profile"]
    if name not in params["profiles"]:
        raise ConfigError(f"profile {name!r} is not in params.yaml; choose one of {sorted(params['profiles'])}")
    return {"name": name, "root": root, "reports": root / "reports" / name, **params["profiles"][name]}


def train_config(params: dict[str, Any], run: str, dataset: str) -> TrainConfig:
    """The TrainConfig of ``run`` on ``dataset`` under a profile: shared values, then per-run ones."""
    if run not in RUNS:
        raise ConfigError(f"unknown run {run!r}; choose one of {sorted(RUNS)}")
    train = dict(params["train"])
    enabled = train.pop("runs")
    per_run = train.pop("per_run", {}) or {}
    model, shortcut = RUNS[run]
    data = params["data"]
    # Per-run values come last, so a run may also override the data limit (e.g. a cheaper -All run).
    values = {**train, "data_root": data["root"], "verify": data["verify"], "limit": data.get("limit"),
              **(per_run.get(run) or {}), "model": model, "shortcut": shortcut, "dataset": dataset}
    if run not in enabled:
        values["epochs"] = max(1, values.get("epochs", 1))  # still validated, never trained
    return TrainConfig.from_dict(values)


def run_training(run: str, profile: str | None = None) -> None:
    """DVC stage ``train@<run>``: train ``run`` on every dataset of the profile, or record a skip.

    Writes ``reports/<profile>/models/<run>/<dataset>/`` (checkpoint, history.csv, metrics.json),
    ``reports/<profile>/metrics/train_<run>.json`` and ``reports/<profile>/curves/<run>.csv``.
    A checkpoint left by an interrupted run with the same parameters is resumed; one made with
    other parameters is discarded (the stage reran because the parameters changed).
    """
    from sdnet.checkpoint import CheckpointError
    from sdnet.train import train

    params = load_params(profile)
    reports = params["reports"]
    enabled = run in params["train"]["runs"]
    summary: dict[str, Any] = {"run": run, "profile": params["name"], "trained": enabled, "datasets": {}}
    curves = []
    (reports / "models" / run).mkdir(parents=True, exist_ok=True)
    for dataset in params["data"]["datasets"]:
        cfg = train_config(params, run, dataset)
        out = reports / "models" / run / dataset
        if not enabled:
            summary["datasets"][dataset] = None
            continue
        try:
            metrics = train(cfg, out)
        except CheckpointError as error:
            if "other parameters" not in str(error):
                raise
            print(f"{out}: parameters changed, training from scratch")
            shutil.rmtree(out)
            metrics = train(cfg, out)
        summary["datasets"][dataset] = metrics
        curves += [{"dataset": dataset, **row} for row in _read_csv(out / "history.csv")]
    for sub in ("metrics", "curves"):
        (reports / sub).mkdir(parents=True, exist_ok=True)
    (reports / "metrics" / f"train_{run}.json").write_text(json.dumps(summary, indent=2) + "\n")
    _write_csv(curves, reports / "curves" / f"{run}.csv", fallback_header=["dataset", "epoch"])


def _read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def _write_csv(rows: list[dict[str, Any]], path: Path, fallback_header: list[str]) -> None:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else fallback_header)
        writer.writeheader()
        writer.writerows(rows)


RESULT_TABLES = [
    ("Classification (paper Table 1)", "02_classification/table1.md"),
    ("SDNet vs SDNet-All (paper Table D.1)", "02_classification/table_d1.md"),
    ("Noise robustness, severity-averaged accuracy (paper: CIFAR-10-C)", "03_noise_robustness/summary.md"),
    ("Adaptive lambda from the input's reconstruction error", "03_noise_robustness/adaptive.md"),
    ("PGD robust accuracy against test-time lambda", "04_adversarial/pgd.md"),
]


def write_results(profile: str | None = None) -> Path:
    """DVC stage ``summarize``: gather the tables of every chapter into ``reports/<profile>/RESULTS.md``."""
    params = load_params(profile)
    reports = params["reports"]
    lines = [
        f"# Results at profile `{params['name']}`",
        "",
        f"Generated by `dvc repro` (stage `summarize`) from the tables under `reports/{params['name']}/tables/`;",
        f"datasets: {', '.join(params['data']['datasets'])}. The executed notebooks in `reports/{params['name']}/notebooks/`",
        "explain every number. Do not edit by hand.",
    ]
    for title, table in RESULT_TABLES:
        path = reports / "tables" / table
        lines += ["", f"## {title}", "", path.read_text().strip() if path.exists() else f"(no table: {table} was not produced)"]
    out = reports / "RESULTS.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Commands run by the DVC pipeline (dvc.yaml).")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one run on every dataset of the active profile")
    t.add_argument("run", choices=sorted(RUNS))
    t.add_argument("--profile", default=None)
    r = sub.add_parser("results", help="gather the chapters' tables into reports/<profile>/RESULTS.md")
    r.add_argument("--profile", default=None)
    args = p.parse_args(argv)
    if args.command == "train":
        run_training(args.run, args.profile)
    else:
        print(write_results(args.profile))


if __name__ == "__main__":
    main()
