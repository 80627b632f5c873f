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
