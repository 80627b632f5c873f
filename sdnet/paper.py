"""The paper's published numbers, with their source: the only place they are written down.

Every side-by-side table of the notebooks takes the paper's column from here. Numbers are top-1
accuracy in %, speed in samples/s on one GPU (as published, hardware not ours).
Source: Dai et al., "Revisiting Sparse Convolutional Model for Visual Recognition", NeurIPS 2022
(arXiv 2210.12945); Table 1 / ImageNet table as reproduced in a later paper that cites it, the
authors' released checkpoints (their repository's README), and the CIFAR-10-C table.
Model size and the 34-layer rows of Table 1 could not be recovered and are left out (None), not
guessed.
"""

from __future__ import annotations

SOURCE = "Dai et al., NeurIPS 2022 (arXiv 2210.12945)"

# (dataset, model) -> {"top1": %, "speed": samples/s or None}
CLASSIFICATION: dict[tuple[str, str], dict[str, float | None]] = {
    ("cifar10", "resnet18"): {"top1": 95.54, "speed": 1600},
    ("cifar10", "sdnet18"): {"top1": 95.20, "speed": 1500},
    ("cifar100", "resnet18"): {"top1": 77.82, "speed": None},
    ("cifar100", "sdnet18"): {"top1": 78.31, "speed": None},
    ("imagenet", "resnet18"): {"top1": 68.98, "speed": 2100},
    ("imagenet", "sdnet18"): {"top1": 69.47, "speed": 1800},
}

# The authors' released checkpoints: top-1 of SDNet-18 / SDNet-18-All / SDNet-18-All without shortcut.
RELEASED_CHECKPOINTS: dict[tuple[str, str], float] = {
    ("cifar10", "sdnet18"): 95.34,
    ("cifar10", "sdnet18_all"): 95.02,
    ("cifar10", "sdnet18_all_noshortcut"): 94.89,
    ("cifar100", "sdnet18"): 78.45,
    ("cifar100", "sdnet18_all"): 77.89,
    ("cifar100", "sdnet18_all_noshortcut"): 77.28,
    ("imagenet", "sdnet18"): 69.78,
    ("imagenet", "sdnet18_all"): 69.68,
    ("imagenet", "sdnet18_all_noshortcut"): 69.03,
}

# CIFAR-10-C, accuracy averaged over the 5 severities; SDNet-18 with lambda tuned at test time.
NOISE_ROBUSTNESS: dict[str, dict[str, float]] = {
    "resnet18": {"gaussian": 44.43, "shot": 57.88, "speckle": 62.16, "impulse": 51.72},
    "sdnet18": {"gaussian": 50.58, "shot": 63.29, "speckle": 67.11, "impulse": 54.13},
}

def published_top1(dataset: str, model: str) -> float | None:
    """The paper's top-1 for a (dataset, model) pair, or None where it published none.

    Table 1 first; the released checkpoints fill the -All rows.
    """
    entry = CLASSIFICATION.get((dataset, model))
    if entry is not None:
        return entry["top1"]
    return RELEASED_CHECKPOINTS.get((dataset, model))

# Where the authors publish those networks: the "Pre-trained Models" table of their README
# (github.com/Delay-Xili/SDNet), one Google Drive folder per network (checkpoint files, training
# logs, tensorboard files).
RELEASED_README = "https://github.com/Delay-Xili/SDNet#pre-trained-models"
RELEASED_LINKS: dict[tuple[str, str], str] = {
    ("cifar10", "sdnet18"): "https://drive.google.com/drive/folders/1oZELeYgrNicKMtuO6RcZgafJMieixawy",
    ("cifar10", "sdnet18_all"): "https://drive.google.com/drive/folders/184YiNng89l2S1g-DPQD_gp8jb3vaTCLw",
    ("cifar10", "sdnet18_all_noshortcut"): "https://drive.google.com/drive/folders/1SaVLqGJak-EmaTGwU14juvwIBJn9baFJ",
    ("cifar100", "sdnet18"): "https://drive.google.com/drive/folders/1EMA-f-6PsxAvaObp1zXuivl-EDFW4MPc",
    ("cifar100", "sdnet18_all"): "https://drive.google.com/drive/folders/1XYtv8Oh4wgHhP_UAF2P0AZHG0fH6AQEc",
    ("cifar100", "sdnet18_all_noshortcut"): "https://drive.google.com/drive/folders/1Jx871n7JAFVCkly8JRCBqKeQAnCNI-rH",
    ("imagenet", "sdnet18"): "https://drive.google.com/drive/folders/1USIY9H3Aa4EV0K0T71gCe2VDSbyBIVO0",
    ("imagenet", "sdnet18_all"): "https://drive.google.com/drive/folders/1vvXr96MBmTDxma6sC0FqQrPcvCO_hrh7",
    ("imagenet", "sdnet18_all_noshortcut"): "https://drive.google.com/drive/folders/1uKl1QrZyR4M0tNu7d0EF8awQtg2kMLa-",
}


def released_help(dataset: str | None = None, run: str | None = None) -> str:
    """Where the authors publish their trained networks, and where this project expects them."""
    if dataset is not None and run is not None and (dataset, run) in RELEASED_LINKS:
        where = f"the authors publish it at {RELEASED_LINKS[(dataset, run)]} (their README: {RELEASED_README})"
    else:
        where = f"the authors publish their trained networks in the 'Pre-trained Models' table of their README ({RELEASED_README}), one Google Drive folder per network"
    return (f"{where[0].upper()}{where[1:]}; download its model_best.pth.tar, for example to "
            f"data/released/{dataset or '<dataset>'}/{run or '<run>'}/model_best.pth.tar, and pass that path.")
