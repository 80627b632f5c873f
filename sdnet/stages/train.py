"""Stage ``train@<run>``: train one run on every dataset and seed of the active profile.

    python -m sdnet.stages.train sdnet18 [--profile quick]

Writes, for every dataset and seed, ``reports/<profile>/models/<run>/<dataset>/seed<k>/`` (what
:func:`sdnet.train.train` writes: the trained network ``weights.pt``, ``history.csv``,
``training.json``, and while the network trains its resume state ``resume.pt``), and
``reports/<profile>/curves/<run>.csv``, every seed's training curve. The models folder is a
git-tracked output (dvc.yaml: ``cache: false``), so a committed study ships its networks, and a
network still training when work stops is committed as its resume state and continues from it on
the next machine (``persist: true``: DVC leaves the folder in place when the stage reruns). A
network already trained by today's weight-deciding code returns at once, so a rerun caused by
this file alone costs seconds; one made by other code, parameters or data is trained again.

This stage imports only the code that decides the weights (:func:`sdnet.provenance.weights_code`,
read from params.yaml by :mod:`sdnet.config`): a change to the evaluation, the chapters or the
paper's numbers does not retrain anything. What the networks score is the ``evaluate@<run>``
stage's (:mod:`sdnet.stages.evaluate`).

A run the profile does not train has its models folder emptied but for ``not-trained.json``; a run given as a checkpoint file
(the profile's ``checkpoints``, e.g. the authors' released networks) is recorded in
``models/<run>/released.json`` (the file, its size and SHA-256), so that the stages reading the
models rerun when the file changes. Folders of datasets or seeds the profile no longer has are
removed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from sdnet.config import ConfigError, Params, checkpoint_path, command_line, load_params, repo_root


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


def run_training(params: Params, root: Path, run: str) -> list[Path]:
    """Train ``run`` on every dataset and seed of the active profile; returns the run folders."""
    from sdnet.train import train

    if run not in params.runs:
        raise ConfigError(f"unknown run {run!r}; params.yaml `runs:` has {', '.join(params.runs)}")
    profile = params.active
    models = root / "reports" / params.profile / "models" / run
    models.mkdir(parents=True, exist_ok=True)
    folders = [params.run_dir(run, root, d, s) for d in profile.data.datasets for s in profile.train.seeds_for(run)] if run in profile.train.runs else []
    keep = set(folders)
    given = profile.checkpoints.given().get(run)
    if given is not None:  # released, not trained: record which file it is
        path = checkpoint_path(root, given)
        if not path.is_file():
            raise ConfigError(f"profiles.{params.profile}.checkpoints.{run} = {given!r}: no such file "
                              "(`python -m sdnet.released --help` says where the authors publish their networks)")
        (models / "released.json").write_text(json.dumps(released_file(path), indent=2) + "\n")
        keep.add(models / "released.json")
    elif not folders:  # said in a file: git keeps no empty folder, and a fresh clone must find this output as DVC recorded it
        (models / "not-trained.json").write_text(json.dumps({"run": run, "profile": params.profile, "trained": False}) + "\n")
        keep.add(models / "not-trained.json")
    _prune(models, keep)
    curves: list[dict[str, Any]] = []
    for out in folders:
        dataset, seed = out.parent.name, int(out.name.removeprefix("seed"))
        train(params.train_config(run, root, dataset, seed), out, restart_stale=True)
        with (out / "history.csv").open() as f:
            curves += [{"dataset": dataset, "seed": seed, **row} for row in csv.DictReader(f)]
    path = root / "reports" / params.profile / "curves" / f"{run}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curves[0]) if curves else ["dataset", "seed", "epoch"])
        writer.writeheader()
        writer.writerows(curves)
    return folders


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Stage train@<run>: train a run on every dataset and seed of the active profile.")
    p.add_argument("run")
    p.add_argument("--profile", default=None, help="default: params.yaml's `profile`")
    args = p.parse_args(argv)
    root = repo_root()
    run_training(load_params(root / "params.yaml", args.profile), root, args.run)


if __name__ == "__main__":
    main()
