"""Datasets as uint8 tensors, and a loader that keeps them on the device.

    train, test = load_dataset("cifar10", "data")            # or "cifar100", "synthetic", "cifar10-jpeg"
    for x, y in DeviceLoader(train, 128, train=True, device="cuda"):
        ...                                                  # x: float [B, 3, 32, 32] in [0, 1]

ImageNet folders (torchvision transforms, DataLoader workers) are in ``sdnet.data.imagenet``;
the CIFAR-10-C noises in ``sdnet.data.corruptions``.
"""

from __future__ import annotations

from pathlib import Path

from sdnet.data.cifar import DataError
from sdnet.data.imageset import ImageSet
from sdnet.data.loader import DeviceLoader

DATASETS = ("synthetic", "cifar10", "cifar100", "cifar10-jpeg")


def load_dataset(
    name: str,
    root: str | Path = "data",
    *,
    verify: bool = True,
    download: bool = False,
    seed: int = 0,
    limit: int | None = None,
) -> tuple[ImageSet, ImageSet]:
    """(train, test) splits of ``name``.

    ``verify``: check the official md5 of CIFAR files; ``download``: fetch the official archive
    when files are missing; ``seed``: of the synthetic dataset; ``limit``: keep the first
    ``limit`` images of each split (quick runs).
    """
    if name == "synthetic":
        from sdnet.data.synthetic import make_synthetic

        train, test = make_synthetic(seed=seed)
    elif name in ("cifar10", "cifar100"):
        from sdnet.data.cifar import load_cifar

        train, test = load_cifar(name, root, verify=verify, download_missing=download)
    elif name == "cifar10-jpeg":
        from sdnet.data.jpeg import load_jpeg_copy

        train, test = load_jpeg_copy(root)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} (ImageNet: sdnet.data.imagenet)")
    if limit is not None:
        train, test = train.subset(min(limit, len(train))), test.subset(min(limit, len(test)))
    return train, test


__all__ = ["DATASETS", "DataError", "DeviceLoader", "ImageSet", "load_dataset"]
