"""The four additive-noise corruptions of CIFAR-10-C (Hendrycks & Dietterich, 2019).

Definitions follow ``make_cifar_c.py`` of the benchmark, on pixel values x in [0, 1]:

| noise | parameter c | corrupted image |
|---|---|---|
| gaussian | standard deviation | clip(x + N(0, c^2)) |
| shot | photons per unit intensity | clip(Poisson(x * c) / c) |
| impulse | fraction of values hit | salt & pepper: that fraction of the values (every channel of every pixel drawn independently) set to 0 or 1 with equal odds |
| speckle | standard deviation | clip(x + x * N(0, c^2)) |

The result is stored like the release: ``uint8(255 * y)``, i.e. truncated, not rounded.
Noise is drawn from a ``torch.Generator`` seeded by ``seed``: the same seed gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sdnet.data.imageset import ImageSet

NOISES = ("gaussian", "shot", "impulse", "speckle")

# The released benchmark's severities 1..5.
SEVERITY_LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot": (500, 250, 100, 75, 50),
    "impulse": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle": (0.06, 0.10, 0.12, 0.16, 0.20),
}

# The finer grids of the paper's own sweep (10 levels each, mildest first). The source gives the
# range of speckle (0.1..0.6) but not its step: we use 10 evenly spaced levels like the others.
FINE_LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian": tuple(round(0.02 * i, 2) for i in range(1, 11)),
    "shot": tuple(float(c) for c in range(60, 0, -6)),
    "impulse": tuple(round(0.03 * i, 2) for i in range(1, 11)),
    "speckle": tuple(round(float(v), 4) for v in np.linspace(0.1, 0.6, 10)),
}


def corrupt(images: Tensor, noise: str, level: float, *, seed: int = 0) -> Tensor:
    """Corrupt uint8 images [N, 3, H, W] with ``noise`` of strength ``level``; uint8 out."""
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {NOISES}")
    if images.dtype != torch.uint8:
        raise ValueError(f"corrupt expects uint8 images, got {images.dtype}")
    g = torch.Generator().manual_seed(seed)
    x = images.cpu().double() / 255
    if noise == "gaussian":
        y = x + level * torch.randn(x.shape, generator=g, dtype=x.dtype)
    elif noise == "shot":
        y = torch.poisson(x * level, generator=g) / level
    elif noise == "speckle":
        y = x + x * level * torch.randn(x.shape, generator=g, dtype=x.dtype)
    else:  # impulse: salt and pepper on a fraction `level` of the values
        hit = torch.rand(x.shape, generator=g, dtype=x.dtype) < level
        salt = torch.rand(x.shape, generator=g, dtype=x.dtype) < 0.5
        y = torch.where(hit, salt.to(x.dtype), x)
    return (y.clamp(0, 1) * 255).to(torch.uint8)  # truncation, as in the release


def corrupt_severity(images: Tensor, noise: str, severity: int, *, seed: int = 0) -> Tensor:
    """``corrupt`` at one of the benchmark's severities 1..5."""
    if severity not in range(1, 6):
        raise ValueError(f"severity must be 1..5, got {severity}")
    return corrupt(images, noise, SEVERITY_LEVELS[noise][severity - 1], seed=seed)


def load_cifar10c(root: str | Path, noise: str, severities=(1, 2, 3, 4, 5)) -> list[tuple[int, ImageSet]]:
    """The released CIFAR-10-C files ``<root>/CIFAR-10-C/<noise>.npy`` + ``labels.npy``, by severity."""
    folder = Path(root) / "CIFAR-10-C"
    images_path = folder / {"gaussian": "gaussian_noise", "shot": "shot_noise", "impulse": "impulse_noise", "speckle": "speckle_noise"}[noise]
    images_path = images_path.with_suffix(".npy")
    if not images_path.is_file() or not (folder / "labels.npy").is_file():
        raise FileNotFoundError(
            f"{images_path} or {folder / 'labels.npy'} is missing: download CIFAR-10-C (Hendrycks & Dietterich) into {folder}, "
            f"or generate the noise with sdnet.data.corruptions.corrupt_severity"
        )
    images, labels = np.load(images_path, mmap_mode="r"), np.load(folder / "labels.npy")
    if images.shape[1:] != (32, 32, 3) or len(images) % 5 or len(labels) != len(images):
        raise ValueError(f"{images_path}: expected 5 stacked severities of [N, 32, 32, 3] uint8 images, got {images.shape}")
    per = len(images) // 5
    from sdnet.data.jpeg import CLASSES

    out = []
    for s in severities:
        part = slice((s - 1) * per, s * per)
        pixels = torch.from_numpy(np.ascontiguousarray(images[part].transpose(0, 3, 1, 2)))
        out.append((s, ImageSet(pixels, torch.from_numpy(labels[part].astype(np.int64)), list(CLASSES), f"CIFAR-10-C {noise} s{s}")))
    return out
