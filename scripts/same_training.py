"""Does a change to the code train the same networks? Train with the old and today's code on this
machine and compare the weights bit for bit.

    python scripts/same_training.py <old commit> [--epochs 2] [--work /tmp/same-training]

For a refactor of the code that decides the weights (sdnet.provenance.weights_code): it trains the
quick profile's networks (every run of ``profiles.quick.train.runs``, its recipe, minutes) and,
with the CIFAR-10 JPEG copy in data/, SDNet-18 with the cpu recipe for ``--epochs`` epochs, once
with the code of ``<old commit>`` (a clone) and once with this working tree, then compares
everything a finished network holds but its provenance and timings: weights and BatchNorm
statistics, the CSC layers' step-size state, architecture, configuration, losses. Exit status 0
when every network is identical; then ``python -m sdnet.tools.restamp`` may record the shipped
networks as made by today's code. One machine, one thread count: bf16 and oneDNN kernels differ
between CPU kinds, so only runs on the same machine are compared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdnet.params import load_params  # noqa: E402
from sdnet.tools.restamp import same  # noqa: E402

COMPARED = ("model", "solver", "arch", "config", "epoch", "dataset")
WHERE = ("data_root",)  # where each tree found the data; the data themselves are compared by their fingerprint


def train(tree: Path, run: str, profile: str, out: Path, flags: list[str]) -> float:
    """Train one network of ``run`` at ``profile`` with the code in ``tree``; returns seconds."""
    stage = tree / "sdnet" / "stages" / "train.py"
    if "--out" in stage.read_text():
        command = ["-m", "sdnet.stages.train", run, "--profile", profile, "--out", str(out), *flags]
    else:  # the layout before sdnet.params: the trainer's own --profile/--run
        command = ["-m", "sdnet.train", "--profile", profile, "--run", run, "--out", str(out), *flags]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(tree), "DVC_NO_ANALYTICS": "1"}
    subprocess.run([sys.executable, *command], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def identical(a: Path, b: Path) -> list[str]:
    """What differs between two finished networks (empty: nothing but provenance and timings)."""
    import torch

    x, y = (torch.load(p / "weights.pt", map_location="cpu", weights_only=True) for p in (a, b))
    for ckpt in (x, y):
        ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k not in WHERE}
    differ = [key for key in COMPARED if not same(x.get(key), y.get(key))]
    if x["provenance"]["data"] != y["provenance"]["data"]:
        differ.append("data")
    if [x["training"][k] for k in ("train_loss", "train_top1")] != [y["training"][k] for k in ("train_loss", "train_top1")]:
        differ.append("training loss")
    return differ


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", help="the commit to compare with (e.g. HEAD~1)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the cpu-recipe network (0: skip it)")
    p.add_argument("--work", type=Path, default=Path("/tmp/same-training"))
    p.add_argument("--compare-only", action="store_true", help="compare the networks a previous run left in --work")
    args = p.parse_args()
    old = args.work / "old"
    if not old.exists() and not args.compare_only:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(old)], check=True)
        (old / "data").symlink_to(ROOT / "data")
    if not args.compare_only:
        subprocess.run(["git", "checkout", "-q", args.old], cwd=old, check=True)
    quick = load_params(ROOT / "params.yaml", "quick").active.train.runs
    jobs = [("quick", run, []) for run in quick]
    if args.epochs and (ROOT / "data" / "cifar10-jpeg.tar.xz").exists():
        jobs.append(("cpu", "sdnet18", ["--epochs", str(args.epochs), "--warmup-epochs", str(min(1, args.epochs - 1))]))
    failed = 0
    for profile, run, flags in jobs:
        outs = {name: args.work / name / profile / run for name in ("old", "new")}
        seconds = {name: 0.0 if args.compare_only else train(tree, run, profile, outs[name], flags) for name, tree in (("old", old), ("new", ROOT))}
        differ = identical(outs["old"], outs["new"])
        failed += bool(differ)
        print(f"{profile} {run} {' '.join(flags)}: {'DIFFERENT: ' + ', '.join(differ) if differ else 'identical'} "
              f"(old {seconds['old']:.0f} s, new {seconds['new']:.0f} s)", flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
