"""The CIFAR-10 JPEG copy: all 60,000 CIFAR-10 images re-encoded as JPEG (quality about 75).

A close stand-in for CIFAR-10 where the official files cannot be had, not CIFAR-10 itself
(PSNR about 30 dB against the original pixels): results on it are labelled "CIFAR-10 (JPEG copy)".
Accepted layouts under ``root``: the archive ``cifar10-jpeg.tar.xz`` (``train/<class>/NNNN.jpg``,
``test/<class>/NNNN.jpg``) or that tree extracted into ``cifar10-jpeg/``. The images are decoded
once and cached as ``cifar10-jpeg.npz`` beside them.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch

from sdnet.data.imageset import ImageSet

NAME = "CIFAR-10 (JPEG copy)"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ARCHIVE, FOLDER, CACHE = "cifar10-jpeg.tar.xz", "cifar10-jpeg", "cifar10-jpeg.npz"


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if array.shape != (32, 32, 3):
        raise ValueError(f"expected a 32x32 RGB image, got {array.shape}")
    return array


def _members(root: Path):
    """Yield (split, class, filename, bytes) from the archive or the extracted folder."""
    if (root / FOLDER).is_dir():
        for path in sorted((root / FOLDER).glob("*/*/*.jpg")):
            yield path.parts[-3], path.parts[-2], path.name, path.read_bytes()
    elif (root / ARCHIVE).is_file():
        with tarfile.open(root / ARCHIVE) as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p]
                if member.isfile() and len(parts) == 3 and parts[2].endswith(".jpg"):
                    yield parts[0], parts[1], parts[2], tar.extractfile(member).read()
    else:
        raise FileNotFoundError(f"neither {root / ARCHIVE} nor {root / FOLDER}/ exists: put the CIFAR-10 JPEG copy there")


def _decode_all(root: Path) -> dict[str, np.ndarray]:
    found: dict[str, list[tuple[int, str, np.ndarray]]] = {"train": [], "test": []}
    for split, cls, name, data in _members(root):
        if split not in found or cls not in CLASSES:
            raise ValueError(f"unexpected entry {split}/{cls}/{name} in the CIFAR-10 JPEG copy")
        found[split].append((CLASSES.index(cls), name, _decode(data)))
    arrays = {}
    for split, items in found.items():
        items.sort(key=lambda item: (item[0], item[1]))  # a stable order: class, then file name
        arrays[f"{split}_images"] = np.stack([img for _, _, img in items]).transpose(0, 3, 1, 2)
        arrays[f"{split}_labels"] = np.array([label for label, _, _ in items], dtype=np.int64)
    return arrays


def load_jpeg_copy(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """(train, test) of the CIFAR-10 JPEG copy, decoding once and caching the pixels."""
    root = Path(root)
    cache = root / CACHE
    if not cache.is_file():
        arrays = _decode_all(root)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    with np.load(cache) as arrays:
        return tuple(  # type: ignore[return-value]
            ImageSet(torch.from_numpy(np.ascontiguousarray(arrays[f"{s}_images"])), torch.from_numpy(arrays[f"{s}_labels"]), list(CLASSES), NAME)
            for s in ("train", "test")
        )
