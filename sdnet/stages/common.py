"""What the stages that read trained networks share: their command line and the runs they compare.

``python -m sdnet.stages.<name> [RUN] [--profile P]`` loads the profile's study (its parameters
checked before any work) and calls the stage's function (:func:`stage_command`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.config import command_line
from sdnet.strict_json import write_json
from sdnet.study import Study, load_study

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BASELINE, SDNET = "resnet18", "sdnet18"  # the paper's comparison (chapters 3 and 4)


def compared(study: Study) -> tuple[list[str], str | None]:
    """The runs a chapter compares, and its baseline: ResNet-18 and SDNet-18, or SDNet-18 alone
    (baseline None) at a profile that neither trains nor is given a ResNet-18 (then the chapters
    compare with the paper's ResNet-18 numbers)."""
    baseline = BASELINE if study.available(BASELINE) else None
    return [run for run in (baseline, SDNET) if run], baseline


def given_files(study: Study, runs: list[str]) -> dict[str, dict[str, str]]:
    """``{"given": {run: file}}`` for the runs of ``runs`` loaded from checkpoint files (the
    profile's ``checkpoints``), to add to a stage's about.json; empty when none is (so that the
    other profiles' outputs stay as they were)."""
    files = {run: str(path) for run in runs if (path := study.given_file(run)) is not None}
    return {"given": files} if files else {}


def save_results(study: Study, name: str, tables: Mapping[str, pd.DataFrame | None], about: dict[str, Any], runs: list[str],
                  *, in_half1: np.ndarray | None = None) -> Path:
    """A computing stage's results, ``results/<name>/``: each table as ``<table>.csv`` (a table
    that is None this run, e.g. the rival without a ResNet-18, has its file removed: the folder
    holds this run's tables only), ``about.json`` (``about`` and the runs of ``runs`` given as
    files), and with ``in_half1`` (which images are in the second half) the tables' per-image
    columns (``correct``, ``correct_<x>``) in ``hits.npz`` instead of the csv (:mod:`sdnet.hits`;
    row i of a csv is row i of its arrays)."""
    folder = study.results(name)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, list] = {} if in_half1 is None else {"subset.in_half1": [in_half1]}
    for table, frame in tables.items():
        path = folder / f"{table}.csv"
        if frame is None:
            path.unlink(missing_ok=True)
            continue
        columns = [c for c in frame.columns if c == "correct" or c.startswith("correct_")] if in_half1 is not None else []
        for c in columns:
            arrays[table if c == "correct" else f"{table}.{c.removeprefix('correct_')}"] = list(frame[c])
        frame.drop(columns=columns).to_csv(path, index=False)
    if in_half1 is not None:
        from sdnet import hits

        hits.save(folder / "hits.npz", arrays)
    write_json(folder / "about.json", {**about, **given_files(study, runs)})
    return folder


def stage_command(description: str, work: Callable[..., object], *, per_run: bool = False) -> Callable[[list[str] | None], None]:
    """The ``main`` of a stage module: ``python -m sdnet.stages.<name> [RUN] [--profile P]`` loads
    the profile's study (its parameters checked before any work) and calls ``work(study)``, or
    ``work(study, run)`` for a stage per run (``per_run``; an unknown run fails naming the runs)."""

    @command_line
    def main(argv: list[str] | None = None) -> None:
        p = argparse.ArgumentParser(description=description)
        if per_run:
            p.add_argument("run")
        p.add_argument("--profile", default=None, help="default: params.yaml's `profile`")
        args = p.parse_args(argv)
        study: Study = load_study(args.profile)
        if per_run:
            study.trained(args.run)  # an unknown run fails here, naming the runs there are
            work(study, args.run)
        else:
            work(study)

    return main
