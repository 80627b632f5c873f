"""Train every network of a profile, seed by seed across the runs, where the stages would.

    python scripts/train_study.py --profile cpu                    # all of them, in the order below
    python scripts/train_study.py --profile cpu --only resnet18:0 sdnet18:0
    python scripts/train_study.py --profile cpu --table [--write]   # the parts so far, for docs/cpu-study.md

``dvc repro`` trains run by run (train@resnet18 trains its three seeds, then train@sdnet18 ...).
A study trained over several working periods is better served seed-major: the first seed of
every compared run first (the chapters that read one seed can run after two networks), then the
next seeds, the slow -All networks last. Each network is trained by exactly what its
``train@<run>`` stage runs (:func:`sdnet.train.train` with the stage's configuration, in the
stage's folder), so the stage later finds it finished and takes seconds; an interrupted one
resumes from its ``resume.pt``. Prints one line per network: its time and where it is.

``--table`` prints what the committed networks record (their ``history.csv`` and ``training.json``):
per network the CPU it trained on, the precision, the median epoch and the wall time, and the
study's CPU-hours; ``--write`` puts it in docs/cpu-study.md between its markers (a test checks that
the page carries the table of the committed networks).
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import time
from pathlib import Path

from sdnet.params import load_params, repo_root
from sdnet.train import train

PAGE = Path("docs") / "cpu-study.md"
MARKERS = ("<!-- parts:{} -->", "<!-- /parts:{} -->")


def order(params, only: list[str] | None) -> list[tuple[str, str, int]]:
    """(run, dataset, seed) of every network the active profile trains, seed-major, -All runs last."""
    profile = params.active
    todo = [(r, d, s) for r in profile.train.runs for d in profile.data.datasets for s in profile.train.seeds_for(r)]
    todo.sort(key=lambda t: ("_all" in t[0], t[2]))  # stable: the profile's order of runs within a seed
    if only:
        wanted = {(w.split(":")[0], int(w.split(":")[1])) for w in only}
        todo = [t for t in todo if (t[0], t[2]) in wanted]
    return todo


def parts_table(params, root: Path) -> str:
    """The committed networks of the active profile, in training order, as a Markdown table (markers
    included): finished ones from ``training.json``, an unfinished one from its ``history.csv``."""
    lines = ["| network | CPU | precision | epochs | median epoch | wall time |", "|---|---|---|---|---|---|"]
    hours = quiet_hours = 0.0
    unfinished = 0  # networks of the profile without a history, or still training
    for run, dataset, seed in order(params, None):
        folder = params.run_dir(run, root, dataset, seed)
        if not (folder / "history.csv").is_file():
            unfinished += 1
            continue
        with (folder / "history.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        finished = (folder / "training.json").is_file()
        seconds = sum(float(r["epoch_seconds"]) for r in rows)
        hours += seconds / 3600
        cpus = sorted({r["device"] for r in rows})
        precisions = sorted({r["precision"] for r in rows})
        epochs = f"{len(rows)}" if finished else f"{len(rows)} (unfinished; `resume.pt`)"
        median = statistics.median(float(r["epoch_seconds"]) for r in rows)
        unfinished += not finished
        quiet_hours += median * len(rows) / 3600
        lines.append(f"| {run} seed {seed} | {', '.join(cpus)} | {', '.join(precisions)} | {epochs} | {median:.1f} s | {seconds / 60:.1f} min |")
    start, end = (m.format(params.profile) for m in MARKERS)
    note = (f"Wall time counts every second of an epoch, pauses for other work on the machine included; the median epoch is "
            f"the speed on quiet cores. {'In all' if unfinished == 0 else 'So far'} {hours:.1f} wall-clock hours of 2 CPU cores, "
            f"{quiet_hours:.1f} hours at the median epoch's speed.")
    return "\n".join([start, *lines, "", note, end]) + "\n"


def write_table(params, root: Path) -> None:
    page = root / PAGE
    text = page.read_text()
    start, end = (m.format(params.profile) for m in MARKERS)
    block = re.search(re.escape(start) + r".*?" + re.escape(end) + r"\n", text, flags=re.S)
    if block is None:
        raise SystemExit(f"{PAGE} has no {start} ... {end} block")
    page.write_text(text.replace(block.group(0), parts_table(params, root)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", required=True)
    p.add_argument("--only", nargs="*", help="run:seed pairs, e.g. resnet18:0")
    p.add_argument("--table", action="store_true", help="print what the committed networks record, train nothing")
    p.add_argument("--write", action="store_true", help="with --table: write it into docs/cpu-study.md")
    args = p.parse_args()
    root = repo_root()
    params = load_params(root / "params.yaml", args.profile)
    if args.table:
        write_table(params, root) if args.write else print(parts_table(params, root), end="")
        return
    for run, dataset, seed in order(params, args.only):
        out = params.run_dir(run, root, dataset, seed)
        tic = time.perf_counter()
        record = train(params.train_config(run, root, dataset, seed), out, restart_stale=True)
        print(f"{run} seed {seed} on {dataset}: {record['epochs']} epochs in {record['train_seconds'] / 60:.1f} min of training "
              f"({time.perf_counter() - tic:.0f} s this call; {', '.join(record['precisions'])} on {', '.join(record['devices'])}) -> {out.relative_to(root)}",
              flush=True)


if __name__ == "__main__":
    main()
