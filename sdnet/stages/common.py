"""What the stages that read trained networks share: their command line and the runs they compare.

``python -m sdnet.stages.<name> [RUN] [--profile P]`` loads the profile's study (its parameters
checked before any work) and calls the stage's function (:func:`stage_command`).
"""

from __future__ import annotations


import argparse
from collections.abc import Callable

from sdnet.config import command_line
from sdnet.study import Study, load_study


BASELINE, SDNET = "resnet18", "sdnet18"  # the paper's comparison (chapters 3 and 4)


def compared(study: Study) -> tuple[list[str], str | None]:
    """The runs a chapter compares, and its baseline: ResNet-18 and SDNet-18, or SDNet-18 alone
    (baseline None) at a profile that neither trains nor is given a ResNet-18 (then the chapters
    compare with the paper's ResNet-18 numbers)."""
    baseline = BASELINE if study.available(BASELINE) else None
    return [run for run in (baseline, SDNET) if run], baseline


def released_runs(study: Study, runs: list[str]) -> dict[str, dict[str, str]]:
    """``{"released": {run: file}}`` for the runs of ``runs`` loaded from checkpoint files (the
    profile's ``checkpoints``), to add to a stage's about.json; empty when none is (so that the
    other profiles' outputs stay as they were)."""
    files = {run: str(path) for run in runs if (path := study.released(run)) is not None}
    return {"released": files} if files else {}


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
