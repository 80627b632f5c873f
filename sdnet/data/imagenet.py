"""ImageNet-1k from an ImageFolder tree (``<root>/train/<wnid>/*.JPEG``, ``<root>/val/<wnid>/*``).

The paper's transforms, with torchvision's transforms v2: training images get RandomResizedCrop
224 and a horizontal flip; validation images are resized to 256 and centre-cropped to 224. The
output is float in [0, 1]: the normalisation is the model's first layer. ImageNet does not fit on
the GPU, so this is a classic DataLoader with worker processes, ready for DistributedSampler.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from sdnet._torchvision import import_torchvision


def transforms(train: bool, crop: int = 224, resize: int = 256):
    import_torchvision()
    from torchvision.transforms import v2
    head = [v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip()] if train else [v2.Resize(resize, antialias=True), v2.CenterCrop(crop)]
    return v2.Compose([v2.ToImage(), *head, v2.ToDtype(torch.float32, scale=True)])


def imagenet_folder(root: str | Path, split: str, *, crop: int = 224, resize: int = 256):
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: ImageNet must be laid out as {root}/train/<class>/... and {root}/val/<class>/...")
    import_torchvision()
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(folder), transform=transforms(split == "train", crop, resize))


def imagenet_loaders(
    root: str | Path,
    batch_size: int,
    *,
    workers: int = 8,
    distributed: bool = False,
    seed: int = 0,
    crop: int = 224,
    resize: int = 256,
) -> tuple[DataLoader, DataLoader]:
    """(train, val) loaders; with ``distributed`` each process reads its shard (DistributedSampler).

    ``batch_size`` is per process. Call ``train_loader.sampler.set_epoch(epoch)`` each epoch when
    distributed (``sdnet.train`` does).
    """
    train_set = imagenet_folder(root, "train", crop=crop, resize=resize)
    val_set = imagenet_folder(root, "val", crop=crop, resize=resize)
    if distributed:
        train_sampler = DistributedSampler(train_set, shuffle=True, seed=seed, drop_last=True)
        val_sampler = DistributedSampler(val_set, shuffle=False)
    else:
        g = torch.Generator().manual_seed(seed)
        train_sampler, val_sampler = torch.utils.data.RandomSampler(train_set, generator=g), None
    common = dict(num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
    train_loader = DataLoader(train_set, batch_size, sampler=train_sampler, drop_last=True, **common)
    val_loader = DataLoader(val_set, batch_size, sampler=val_sampler, shuffle=False, **common)
    return train_loader, val_loader
