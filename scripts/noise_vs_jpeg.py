"""Does training on JPEG images make a network robust to additive noise?

Chapter 3 found our ResNet-18 far less hurt by CIFAR-10-C noise than the paper's (averaged over
the four noises and five severities it keeps 83% of its clean accuracy, the paper's 57%), at 74%
and at 88% top-1 alike, so network strength alone does not explain it. Our networks differ from
the paper's in two more ways: width 16 (not 64), and training on the JPEG copy (quality 75, PSNR
30 dB: JPEG drops the fine detail that additive noise swamps). This script isolates the JPEG: the
same network, recipe and seed trained on the same images twice, once with their exact pixels and
once JPEG round-tripped as the copy was made (Pillow, quality 75, 4:2:0 chroma: within 43 dB of
the copy's own files); then both are tested on exact and JPEG test images, clean and under the
four noises at severities 1-5 (our generator with CIFAR-10-C's constants).

The only exact CIFAR pixels here are the mini set (``../shared/data/cifar-mini``: 5,170 training
and 1,017 test images), so the networks are small-data ones (72-76% top-1 after 40 epochs): the
comparison is between the two trainings, not with the paper's numbers.

    python scripts/noise_vs_jpeg.py --shared ../shared/data --models resnet18 --seed 0

Writes ``<out>/accuracy.csv`` (model, trained_on, tested_on, noise, severity, lam, top1),
``<out>/summary.md`` and each run's training folder under ``<out>/runs/`` (checkpoints are left
in ``--work``).
"""

from __future__ import annotations

import argparse
import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from sdnet.checkpoint import load_model
from sdnet.data.cifar import CIFAR10_CLASSES, read_split
from sdnet.data.corruptions import NOISES, corrupt_severity
from sdnet.evaluate import lambda_sweep
from sdnet.study import batches
from sdnet.train import main as train_main

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def jpeg_round_trip(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """uint8 [N, 3, 32, 32] encoded and decoded as the JPEG copy was (Pillow's default 4:2:0)."""
    out = np.empty_like(images)
    for i, x in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(x.transpose(1, 2, 0)).save(buffer, "JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB")).transpose(2, 0, 1)
    return out


def copy_test_images(archive: Path, labels: np.ndarray) -> np.ndarray:
    """The JPEG copy's own files for the first test images: ``test/<class>/NNNN.jpg`` is the
    NNNN-th test image of that class, in the official order."""
    rank = np.zeros(len(labels), int)
    seen: dict[int, int] = {}
    for i, c in enumerate(labels):
        rank[i] = seen.get(int(c), 0)
        seen[int(c)] = rank[i] + 1
    wanted = {f"test/{CIFAR10_CLASSES[c]}/{r:04d}.jpg": i for i, (c, r) in enumerate(zip(labels, rank))}
    out = np.zeros((len(labels), 3, 32, 32), np.uint8)
    found = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.name in wanted:
                image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                out[wanted[member.name]] = np.asarray(image).transpose(2, 0, 1)
                found += 1
    if found != len(labels):
        raise SystemExit(f"{archive}: found {found} of {len(labels)} test images")
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def write_pickles(source: Path, target: Path, transform) -> None:
    """The official pickle layout with every batch's pixels passed through ``transform``."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "batches.meta", target / "batches.meta")
    for name in BATCHES:
        with open(source / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        pixels = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
        batch[b"data"] = transform(pixels).reshape(len(pixels), -1)
        with open(target / name, "wb") as f:
            pickle.dump(batch, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"), help="holds cifar-mini/ and cifar10-jpeg.tar.xz")
    parser.add_argument("--out", type=Path, help="default: reports/noise-vs-jpeg/seed<seed>")
    parser.add_argument("--work", type=Path, help="data copies and checkpoints; default: logs/noise-vs-jpeg/seed<seed>")
    parser.add_argument("--models", nargs="+", default=["resnet18"], help="add sdnet18 for SDNet-18 at its training and tuned lambda")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.8, 1.2])
    args = parser.parse_args()
    args.out = args.out or Path(f"reports/noise-vs-jpeg/seed{args.seed}")
    args.work = args.work or Path(f"logs/noise-vs-jpeg/seed{args.seed}")

    exact_root = args.shared / "cifar-mini"
    source = exact_root / "cifar-10-batches-py"
    jpeg_root = args.work / "data-jpeg"
    write_pickles(source, jpeg_root / "cifar-10-batches-py", jpeg_round_trip)

    test = read_split("cifar10", exact_root, "test", verify=False)
    exact_test = test.images.numpy()
    tests = {"exact": exact_test, "JPEG copy": copy_test_images(args.shared / "cifar10-jpeg.tar.xz", test.labels.numpy())}
    ours = read_split("cifar10", jpeg_root, "test", verify=False).images.numpy()
    print(f"PSNR against the exact test pixels: the copy's files {psnr(tests['JPEG copy'], exact_test):.2f} dB, "
          f"our round trip {psnr(ours, exact_test):.2f} dB; ours against the copy's {psnr(ours, tests['JPEG copy']):.2f} dB")

    conditions = {}
    for tested_on, images in tests.items():
        images = torch.from_numpy(images)
        conditions[(tested_on, "clean", 0)] = batches(images, test.labels)
        for noise in NOISES:
            for severity in range(1, 6):
                conditions[(tested_on, noise, severity)] = batches(corrupt_severity(images, noise, severity, seed=severity), test.labels)

    rows = []
    for model_name in args.models:
        for trained_on, root in (("exact", exact_root), ("JPEG", jpeg_root)):
            run = args.work / "runs" / f"{model_name}-{trained_on.lower()}"
            train_main([  # the cpu profile's recipe (params.yaml), on these images
                "--out", str(run), "--profile", "cpu", "--run", model_name, "--dataset", "cifar10", "--data-root", str(root),
                "--verify", "false", "--epochs", str(args.epochs), "--warmup-epochs", str(args.epochs // 5),
                "--seed", str(args.seed), "--progress", "false",
            ])
            kept = args.out / "runs" / run.name
            kept.mkdir(parents=True, exist_ok=True)
            for name in ("history.csv", "training.json"):
                shutil.copy(run / name, kept / name)
            model = load_model(run / "weights.pt")[0]
            lambdas = args.lambdas if model_name != "resnet18" else [0.1]
            for (tested_on, noise, severity), data in conditions.items():
                for row in lambda_sweep(model, data, lambdas):
                    rows.append(dict(model=model_name, trained_on=trained_on, tested_on=tested_on, noise=noise,
                                     severity=severity, lam=row["lam"], top1=row["top1"]))
            pd.DataFrame(rows).to_csv(args.out / "accuracy.csv", index=False)  # after every run: a stop keeps the rest
    summarize(pd.DataFrame(rows), args.out)


def summarize(table: pd.DataFrame, out: Path) -> None:
    """Clean top-1, severity-averaged top-1 per noise and the share of clean accuracy kept; SDNet
    at its training lambda and at the best lambda of each condition (the paper's tuned lambda)."""
    lines = ["| model | lambda | trained on | tested on | clean | " + " | ".join(NOISES) + " | noise mean | kept |", "|" + "---|" * (7 + len(NOISES))]
    for (model, trained_on, tested_on), part in table.groupby(["model", "trained_on", "tested_on"], sort=False):
        readings = {"training": part[part["lam"] == 0.1]}
        if model != "resnet18":
            readings["tuned"] = part.loc[part.groupby(["noise", "severity"])["top1"].idxmax()]
        for reading, chosen in readings.items():
            clean = chosen[chosen["noise"] == "clean"]["top1"].mean()
            per_noise = chosen[chosen["noise"] != "clean"].groupby("noise")["top1"].mean()
            mean = per_noise.mean()
            lam = "-" if model == "resnet18" else reading
            lines.append(f"| {model} | {lam} | {trained_on} | {tested_on} | {clean:.1f} | "
                         + " | ".join(f"{per_noise[n]:.1f}" for n in NOISES) + f" | {mean:.1f} | {100 * mean / clean:.0f}% |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
