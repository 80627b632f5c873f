"""The four additive-noise corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019).

Definitions follow the benchmark's ``make_cifar_c.py``, on pixel values x = uint8 / 255 in [0, 1]:

| noise | level c | corrupted value |
|---|---|---|
| gaussian | standard deviation | clip(x + N(0, c^2)) |
| shot | photons per unit intensity | clip(Poisson(x * c) / c) |
| impulse | fraction of values hit | salt and pepper: each value (every channel of every pixel on its own) is hit with probability c, and a hit value becomes 0 or 1 with equal odds |
| speckle | standard deviation | clip(x + x * N(0, c^2)) |

clip is to [0, 1]. The result is stored like the release, ``uint8(255 * y)``: truncated, not
rounded (so on average about half a grey level darker than rounding would give). The arithmetic
is float64, as in numpy, so an unchanged value maps back to the same byte.

Impulse noise is skimage's ``random_noise(mode="s&p")`` as it is defined today (an independent
draw per value). The 2018 skimage the release was made with drew a fixed number of coordinates
with replacement instead; the two agree in distribution up to a fraction of a percent of the hits.

Noise comes from a CPU ``torch.Generator`` seeded by ``seed``: the same seed and the same input
give the same bytes on every machine (an image's noise depends on its position in the batch), and
the global RNG is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sdnet.data.cifar import CIFAR10_CLASSES
from sdnet.data.imageset import DataError, ImageSet

NOISES = ("gaussian", "shot", "impulse", "speckle")

# The released benchmark's severities 1..5 (make_cifar_c.py).
SEVERITY_LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot": (500.0, 250.0, 100.0, 75.0, 50.0),
    "impulse": (0.01, 0.02, 0.03, 0.05, 0.07),
    "speckle": (0.06, 0.10, 0.12, 0.16, 0.20),
}

# The release's file names, <root>/CIFAR-10-C/<file>.
RELEASE_FILES = {noise: f"{noise}_noise.npy" for noise in NOISES}
CHUNK = 2048  # images per vectorised step: bounds the float64 temporaries (~50 MB for 32x32)


def _noisy(x: Tensor, noise: str, level: float, g: torch.Generator) -> Tensor:
    """The corrupted float64 values of ``x`` (in [0, 1]) before clipping."""
    if noise == "gaussian":
        return x + torch.randn(x.shape, generator=g, dtype=x.dtype) * level
    if noise == "shot":
        return torch.poisson(x * level, generator=g) / level
    if noise == "speckle":
        return x + x * torch.randn(x.shape, generator=g, dtype=x.dtype) * level
    hit = torch.rand(x.shape, generator=g, dtype=x.dtype) < level  # impulse
    salt = torch.rand(x.shape, generator=g, dtype=x.dtype) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def _check_level(noise: str, level: float) -> None:
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {NOISES}")
    valid = {"gaussian": level >= 0, "speckle": level >= 0, "shot": level > 0, "impulse": 0 <= level <= 1}[noise]
    if not valid:
        allowed = {"gaussian": ">= 0", "speckle": ">= 0", "shot": "> 0", "impulse": "in [0, 1]"}[noise]
        raise ValueError(f"{noise} noise level must be {allowed}, got {level}")


def corrupt(images: Tensor, noise: str, level: float, *, seed: int = 0) -> Tensor:
    """``images`` (uint8 [N, 3, H, W]) corrupted by ``noise`` at strength ``level``; uint8, same
    shape and device. Deterministic in ``seed``; vectorised over chunks of images."""
    _check_level(noise, level)
    if images.dtype != torch.uint8:
        raise ValueError(f"corrupt expects uint8 images, got {images.dtype}")
    g = torch.Generator().manual_seed(seed)
    source = images.cpu()
    out = torch.empty_like(source)
    for start in range(0, len(source), CHUNK):
        x = source[start : start + CHUNK].double() / 255
        y = _noisy(x, noise, float(level), g).clamp_(0, 1).mul_(255)
        out[start : start + CHUNK] = y.to(torch.uint8)  # truncation toward zero, as np.uint8 does
    return out.to(images.device)


def corrupt_severity(images: Tensor, noise: str, severity: int, *, seed: int = 0) -> Tensor:
    """:func:`corrupt` at one of the benchmark's severities 1..5 (:data:`SEVERITY_LEVELS`)."""
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {NOISES}")
    if isinstance(severity, bool) or severity not in range(1, 6):
        raise ValueError(f"severity must be one of 1..5, got {severity!r}")
    return corrupt(images, noise, SEVERITY_LEVELS[noise][severity - 1], seed=seed)


def load_cifar10c(root: str | Path, noise: str, severities: Iterable[int] = (1, 2, 3, 4, 5)) -> list[tuple[int, ImageSet]]:
    """The released CIFAR-10-C images of ``noise``, as ``[(severity, ImageSet), ...]``.

    Reads ``<root>/CIFAR-10-C/<noise>_noise.npy`` (``<noise>.npy`` is accepted too): uint8
    [5 * 10,000, 32, 32, 3], severities 1..5 stacked, and ``labels.npy``. The file is memory-mapped,
    so only the requested severities are read.
    """
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {NOISES}")
    severities = list(severities)
    if bad := [s for s in severities if isinstance(s, bool) or s not in range(1, 6)]:
        raise ValueError(f"severities must be in 1..5, got {bad}")
    folder = Path(root) / "CIFAR-10-C"
    candidates = [folder / RELEASE_FILES[noise], folder / f"{noise}.npy"]
    images_path = next((p for p in candidates if p.is_file()), None)
    labels_path = folder / "labels.npy"
    if images_path is None or not labels_path.is_file():
        missing = candidates[0] if images_path is None else labels_path
        raise FileNotFoundError(
            f"{missing} is missing. Download CIFAR-10-C (Hendrycks & Dietterich, https://zenodo.org/record/2535967) "
            f"and extract it so that {folder}/ holds {RELEASE_FILES[noise]} and labels.npy; or generate the same "
            f"noise with sdnet.data.corruptions.corrupt_severity(test_images, {noise!r}, severity)."
        )
    try:
        images, labels = np.load(images_path, mmap_mode="r"), np.load(labels_path)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {images_path} or {labels_path}: {error}; download CIFAR-10-C again") from error
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) % 5:
        raise DataError(
            f"{images_path}: expected uint8 [5 * N, 32, 32, 3] (5 stacked severities), got {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),):
        raise DataError(f"{labels_path}: expected {len(images)} labels to match {images_path.name}, got shape {labels.shape}")
    per = len(images) // 5
    out = []
    for s in severities:
        part = slice((s - 1) * per, s * per)
        pixels = torch.from_numpy(np.ascontiguousarray(images[part].transpose(0, 3, 1, 2)))
        targets = torch.from_numpy(labels[part].astype(np.int64))
        out.append((s, ImageSet(pixels, targets, list(CIFAR10_CLASSES), f"CIFAR-10-C {noise} noise, severity {s}")))
    return out
