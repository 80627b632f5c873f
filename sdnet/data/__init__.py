"""Datasets as uint8 tensors, and a loader that keeps them on the device.

    from sdnet.data import DeviceLoader, load_dataset

    train, test = load_dataset("cifar10", "data")    # or "cifar100", "synthetic", "cifar10-jpeg"
    loader = DeviceLoader(train, 128, train=True, device="cuda")
    for epoch in range(epochs):
        loader.set_epoch(epoch)                      # order and augmentation: f(seed, epoch)
        for x, y in loader:                          # x: float [128, 3, 32, 32] in [0, 1]
            ...

Modules: ``cifar`` (the official CIFAR pickles, md5-checked, download), ``jpeg`` (the CIFAR-10
JPEG copy), ``synthetic`` (the embedded default dataset), ``loader`` (the device loader and its
batched augmentation), ``corruptions`` (CIFAR-10-C's additive noises), ``imagenet`` (ImageFolder
trees with torchvision transforms and worker processes; imports torchvision, so it is not
imported here).
"""

from __future__ import annotations

from pathlib import Path

from sdnet.data.imageset import DataError, ImageSet
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
    """The (train, test) splits of dataset ``name`` (one of :data:`DATASETS`).

    ``root``: the folder holding the dataset files (not used by "synthetic"); ``verify``: check
    the files against the official md5s (CIFAR) or the known archive (JPEG copy) and refuse
    others; ``download``: fetch the official CIFAR archive when files are missing (the JPEG copy
    has no download); ``seed``: of the "synthetic" dataset (a property of the data, not of a
    training run); ``limit``: keep a class-balanced subset of ``limit`` images of each split
    (:meth:`ImageSet.balanced`).

    Raises ValueError for an unknown name, FileNotFoundError (saying where it looked and how to
    get the data) for missing files, DataError for corrupt or unofficial files.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} (ImageNet: sdnet.data.imagenet.imagenet_loaders)")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images or None, got {limit}")
    if name == "synthetic":
        from sdnet.data.synthetic import make_synthetic

        train, test = make_synthetic(10_000, 2_000, seed=seed)
    elif name in ("cifar10", "cifar100"):
        from sdnet.data.cifar import load_cifar

        train, test = load_cifar(name, root, verify=verify, download=download)
    else:
        from sdnet.data.jpeg import load_jpeg_copy

        train, test = load_jpeg_copy(root, verify=verify)
    if limit is not None:
        train, test = train.balanced(limit), test.balanced(limit)
    return train, test


__all__ = ["DATASETS", "DataError", "DeviceLoader", "ImageSet", "load_dataset"]
