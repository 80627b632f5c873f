"""The data of one training run: its :class:`sdnet.config.TrainConfig`'s dataset as loaders.

    from sdnet.data.run_loaders import make_loaders
    data = make_loaders(cfg, device, setup_distributed(device)[0])
    data.train, data.test, data.num_classes, data.fingerprint

Shared by the trainer and :func:`sdnet.evaluate.test_metrics`, which scores a trained network on
the test split the run was trained beside.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import torch

from sdnet.config import TrainConfig
from sdnet.device import Dist
from sdnet.provenance import data_fingerprint


@dataclasses.dataclass
class Data:
    """What a run trains and tests on: loaders, number of classes, display name, stem, and a
    fingerprint of the images (a checkpoint made on other data is not resumed)."""

    train: Any
    test: Any
    num_classes: int
    name: str
    stem: str
    fingerprint: str


def make_loaders(cfg: TrainConfig, device: torch.device, ddp: Dist) -> Data:
    if cfg.dataset == "imagenet":
        from sdnet.data.imagenet import imagenet_loaders

        train_loader, test_loader = imagenet_loaders(cfg.data_root, cfg.batch_size, workers=cfg.workers, distributed=ddp.world_size > 1, seed=cfg.seed)
        classes = train_loader.dataset.classes
        listing = f"{len(train_loader.dataset)} {len(test_loader.dataset)} {classes}"  # too large to hash its pixels
        return Data(train_loader, test_loader, len(classes), "ImageNet-1k", "imagenet", hashlib.sha256(listing.encode()).hexdigest()[:16])
    from sdnet.data import DeviceLoader, load_dataset

    train_set, test_set = load_dataset(cfg.dataset, cfg.data_root, verify=cfg.verify, limit=cfg.limit)
    common = dict(device=device, seed=cfg.seed, rank=ddp.rank, world_size=ddp.world_size, channels_last=cfg.channels_last)
    train_loader = DeviceLoader(train_set, cfg.batch_size, train=True, **common)
    test_loader = DeviceLoader(test_set, max(cfg.batch_size, 500), train=False, **common)
    return Data(train_loader, test_loader, len(train_set.classes), train_set.name, "cifar", data_fingerprint(train_set, test_set))
