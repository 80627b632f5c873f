"""Stage ``train@<run>``: train one run on every dataset and seed of the active profile.

    python -m sdnet.stages.train sdnet18 [--profile quick]

Writes ``reports/<profile>/models/<run>/<dataset>/seed<k>/`` (checkpoint, history.csv,
metrics.json), ``reports/<profile>/train/<run>.json`` (per dataset: the metrics of every seed and
their mean and standard deviation) and ``reports/<profile>/curves/<run>.csv``. A run the profile
does not train is recorded as such (``"trained": false``) and its models folder emptied; a run
given as a checkpoint file (the profile's ``checkpoints``, e.g. the authors' released networks)
is recorded as released, not trained (``"released"``: the file, its size and SHA-256, also written
to ``models/<run>/released.json`` so that the stages reading the models rerun when the file
changes), in seconds.

The models folder persists between runs of the stage (dvc.yaml ``persist: true``), so a run
interrupted in the middle resumes from its last checkpoint; a checkpoint made with other
parameters, code or data is discarded and the run trained from scratch (``sdnet.train.train``
decides). Folders of datasets or seeds the profile no longer has are removed.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import statistics
from pathlib import Path
from typing import Any

from sdnet.stages import stage_command
from sdnet.strict_json import write_json
from sdnet.study import Study


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _write_csv(rows: list[dict[str, Any]], path: Path, header: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else header)
        writer.writeheader()
        writer.writerows(rows)


def spread(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None for a single value) of a list of numbers."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def _prune(folder: Path, keep: set[Path]) -> None:
    """Remove what is under ``folder`` but neither in ``keep`` nor a parent of it."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path in keep:
            continue
        if any(path in k.parents for k in keep):
            _prune(path, keep)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def released_file(path: Path) -> dict[str, Any]:
    """What identifies a checkpoint file: its path, size and SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"file": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def run_training(study: Study, run: str) -> dict[str, Any]:
    """Train ``run`` on every dataset and seed of ``study``; returns the summary it writes."""
    from sdnet.train import train

    trained = study.trained(run)
    seeds, datasets = study.train.seeds_for(run), study.data.datasets
    summary: dict[str, Any] = {"run": run, "profile": study.name, "trained": trained, "seeds": seeds, "datasets": {}}
    curves: list[dict[str, Any]] = []
    folders = {study.model_dir(run, d, s) for d in datasets for s in seeds} if trained else set()
    models = study.reports / "models" / run
    models.mkdir(parents=True, exist_ok=True)
    given = study.released(run)
    if given is not None:  # released, not trained: nothing to compute
        summary["released"] = released_file(given)
        folders = {models / "released.json"}
        write_json(models / "released.json", summary["released"])
    _prune(models, folders)
    for dataset in datasets if trained else []:
        per_seed = {}
        for seed in seeds:
            out = study.model_dir(run, dataset, seed)
            per_seed[seed] = train(study.train_config(run, dataset, seed), out, restart_stale=True)
            curves += [{"dataset": dataset, "seed": seed, **row} for row in _read_csv(out / "history.csv")]
        summary["datasets"][dataset] = {
            "seeds": per_seed,
            **{f"{key}_{stat}": value for key in ("top1", "top5") for stat, value in spread([m[key] for m in per_seed.values()]).items()},
        }
    write_json(study.reports / "train" / f"{run}.json", summary)
    _write_csv(curves, study.reports / "curves" / f"{run}.csv", header=["dataset", "seed", "epoch"])
    return summary


main = stage_command("Stage train@<run>: train a run on every dataset and seed of the active profile.", run_training, per_run=True)


if __name__ == "__main__":
    main()
