"""ImageNet-1k from an ImageFolder tree: ``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*``.

The paper's transforms, with torchvision's transforms v2: training images get RandomResizedCrop
224 (scale 0.08..1) and a horizontal flip; validation images are resized to 256 (shorter side)
and centre-cropped to 224. Decoding and cropping happen on uint8 images; the output is float in
[0, 1], because the normalisation is the model's first layer. ImageNet does not fit on the GPU,
so this is a classic DataLoader with worker processes.

The training order is a pure function of (seed, epoch) in every case: a DistributedSampler is
used for one process too (one replica), so ``loader.sampler.set_epoch(epoch)`` works alike and a
resumed run sees the same order. The validation split is sharded across processes without
padding (every image exactly once), so summed metrics are exact.

This module imports torchvision (through ``sdnet._torchvision``), so ``sdnet.data`` does not
import it: the rest of the package runs without torchvision.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from sdnet._torchvision import import_torchvision


def transforms(train: bool, crop: int = 224, resize: int = 256):
    """The paper's train or validation transform: PIL image -> float [3, crop, crop] in [0, 1]."""
    import_torchvision()
    from torchvision.transforms import v2

    if train:
        geometry = [v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip()]
    else:
        geometry = [v2.Resize(resize, antialias=True), v2.CenterCrop(crop)]
    return v2.Compose([v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True)])


def imagenet_folder(root: str | Path, split: str, *, crop: int = 224, resize: int = 256):
    """The ImageFolder dataset of ``<root>/<split>`` with the paper's transform for that split."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist. ImageNet must be laid out as {Path(root)}/train/<class>/*.JPEG and "
            f"{Path(root)}/val/<class>/*.JPEG (the validation images sorted into class folders); "
            f"it cannot be downloaded automatically (https://image-net.org)."
        )
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
    """(train, val) DataLoaders over ``<root>/train`` and ``<root>/val``.

    ``batch_size`` is per process. With ``distributed`` (torch.distributed initialised) each
    process reads its own shard. Call ``train_loader.sampler.set_epoch(epoch)`` every epoch
    (``sdnet.train`` does). ``crop``/``resize`` default to the paper's 224/256.
    """
    train_set = imagenet_folder(root, "train", crop=crop, resize=resize)
    val_set = imagenet_folder(root, "val", crop=crop, resize=resize)
    if train_set.classes != val_set.classes:
        raise ValueError(
            f"{root}: train/ and val/ have different class folders ({len(train_set.classes)} vs {len(val_set.classes)})"
        )
    if distributed:
        import torch.distributed as dist

        rank, world_size = dist.get_rank(), dist.get_world_size()
    else:
        rank, world_size = 0, 1
    train_sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    val_shard = range(rank, len(val_set), world_size)  # a sampler is any iterable of indices
    pin = torch.cuda.is_available()
    common = dict(num_workers=workers, pin_memory=pin, persistent_workers=workers > 0)
    # with workers > 0, their random streams (the crops) derive from this generator: reproducible runs
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size, sampler=train_sampler, drop_last=True, generator=generator, **common)
    val_loader = DataLoader(val_set, batch_size, sampler=val_shard, **common)
    return train_loader, val_loader
