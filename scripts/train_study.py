"""Train every network of a profile, seed by seed across the runs, where the stages would.

    python scripts/train_study.py --profile cpu                    # all of them, in the order below
    python scripts/train_study.py --profile cpu --only resnet18:0 sdnet18:0

``dvc repro`` trains run by run (train@resnet18 trains its three seeds, then train@sdnet18 ...).
A study trained over several working periods is better served seed-major: the first seed of
every compared run first (the chapters that read one seed can run after two networks), then the
next seeds, the slow -All networks last. Each network is trained by exactly what its
``train@<run>`` stage runs (:func:`sdnet.train.train` with the stage's configuration, in the
stage's folder), so the stage later finds it finished and takes seconds; an interrupted one
resumes from its ``resume.pt``. Prints one line per network: its time and where it is.
"""

from __future__ import annotations

import argparse
import time

from sdnet.config import load_params, repo_root
from sdnet.train import train


def order(params, only: list[str] | None) -> list[tuple[str, str, int]]:
    """(run, dataset, seed) of every network the active profile trains, seed-major, -All runs last."""
    profile = params.active
    todo = [(r, d, s) for r in profile.train.runs for d in profile.data.datasets for s in profile.train.seeds_for(r)]
    todo.sort(key=lambda t: ("_all" in t[0], t[2]))  # stable: the profile's order of runs within a seed
    if only:
        wanted = {(w.split(":")[0], int(w.split(":")[1])) for w in only}
        todo = [t for t in todo if (t[0], t[2]) in wanted]
    return todo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", required=True)
    p.add_argument("--only", nargs="*", help="run:seed pairs, e.g. resnet18:0")
    args = p.parse_args()
    root = repo_root()
    params = load_params(root / "params.yaml", args.profile)
    for run, dataset, seed in order(params, args.only):
        out = params.run_dir(run, root, dataset, seed)
        tic = time.perf_counter()
        record = train(params.train_config(run, root, dataset, seed), out, restart_stale=True)
        print(f"{run} seed {seed} on {dataset}: {record['epochs']} epochs in {record['train_seconds'] / 60:.1f} min of training "
              f"({time.perf_counter() - tic:.0f} s this call; {', '.join(record['precisions'])} on {', '.join(record['devices'])}) -> {out.relative_to(root)}",
              flush=True)


if __name__ == "__main__":
    main()
