"""Stage ``train@<run>``: train one run on every dataset and seed of the active profile.

    python -m sdnet.stages.train sdnet18 [--profile quick]
    python -m sdnet.stages.train sdnet18 --profile paper --out runs/sdnet18 [--dataset cifar100 --seed 1 --epochs 2 ...]

The second form trains one network of a run outside the study's folders: the profile's values for
that run (first dataset and seed unless given), then any TrainConfig flag of ``python -m sdnet.train``.

Writes, for every dataset and seed, ``reports/<profile>/models/<run>/<dataset>/seed<k>/`` (what
:func:`sdnet.train.train` writes: the trained network ``weights.pt``, ``history.csv``,
``training.json``, and while the network trains its resume state ``resume.pt``), and
``reports/<profile>/curves/<run>.csv``, every seed's training curve. The models folder is a
git-tracked output (dvc.yaml: ``cache: false``), so a committed study ships its networks, and a
network still training when work stops is committed as its resume state and continues from it on
the next machine (``persist: true``: DVC leaves the folder in place when the stage reruns). A
network already trained by today's weight-deciding code returns at once, so a rerun caused by
this file alone costs seconds; one made by other code, parameters or data is trained again.

Besides this module and the study's parameters (:mod:`sdnet.params`, which turn a profile into a
:class:`sdnet.config.TrainConfig`), the stage imports only the code that decides the weights
(:func:`sdnet.provenance.weights_code`): a change to the evaluation, the chapters or the paper's
numbers does not rerun it, and a change to the parameters' schema reruns it in seconds. What the networks score is the ``evaluate@<run>``
stage's (:mod:`sdnet.stages.evaluate`).

A run the profile does not train has its models folder emptied but for ``not-trained.json``; a run given as a checkpoint file
(the profile's ``checkpoints``, e.g. the authors' released networks) is recorded in
``models/<run>/given.json`` (the file, its size and SHA-256), so that the stages reading the
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

from sdnet.config import ConfigError, TrainConfig, command_line
from sdnet.params import Params, checkpoint_path, load_params, repo_root


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


def file_identity(path: Path) -> dict[str, Any]:
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
    if given is not None:  # given, not trained: record which file it is
        path = checkpoint_path(root, given)
        if not path.is_file():
            raise ConfigError(f"profiles.{params.profile}.checkpoints.{run} = {given!r}: no such file "
                              "(`python -m sdnet.released --help` says where the authors publish their networks)")
        (models / "given.json").write_text(json.dumps(file_identity(path), indent=2) + "\n")
        keep.add(models / "given.json")
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


def one_network(params: Params, root: Path, run: str, flags: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one network of ``run``: the active profile's values for it (on the dataset
    and with the seed in ``flags``, else its first), then the other TrainConfig ``flags``."""
    base = params.train_config(run, root, flags.get("dataset"), flags.get("seed"))
    return TrainConfig.from_dict({**base.to_dict(), **flags})


@command_line
def main(argv: list[str] | None = None) -> None:
    from sdnet.train import add_config_flags

    p = argparse.ArgumentParser(description="Stage train@<run>: train a run on every dataset and seed of the active profile "
                                "(with --out: one network of it, in that folder, with any TrainConfig flag).")
    p.add_argument("run")
    p.add_argument("--profile", default=None, help="default: params.yaml's `profile`")
    p.add_argument("--out", type=Path, default=None, help="train one network of the run here (not the study's folder)")
    add_config_flags(p)
    args = vars(p.parse_args(argv))
    run, profile, out = args.pop("run"), args.pop("profile"), args.pop("out")
    root = repo_root()
    params = load_params(root / "params.yaml", profile)
    if out is None:
        if args:
            raise ConfigError(f"--{next(iter(args)).replace('_', '-')} trains one network outside the study: give --out (the stage's own values are params.yaml's)")
        run_training(params, root, run)
    else:
        from sdnet.train import train

        print(json.dumps(train(one_network(params, root, run, args), out), indent=2, allow_nan=False))


if __name__ == "__main__":
    main()
