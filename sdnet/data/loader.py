"""A loader that keeps a whole split on the device and augments whole batches there.

CIFAR fits in GPU memory many times over (50,000 x 3 x 32 x 32 bytes = 154 MB), so the usual
worker processes, per-image PIL transforms and host-to-device copies are pure overhead. The
paper's augmentation (a random 32x32 crop of the image zero-padded by 4 pixels, then a horizontal
flip with probability 1/2) becomes one ``gather`` on a uint8 batch: a flip is a crop that reads
its columns backwards.

Order, crop offsets and flips of an epoch are drawn on the CPU from a generator seeded by
(seed, epoch) alone, never from the global RNG. So they are the same on every device and every
rank, and a run resumed at epoch k sees exactly the batches an uninterrupted run would.

    python -m sdnet.data --bench      # images/s of a training epoch, CPU (and CUDA when present)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator

import torch
from torch import Tensor

from sdnet.config import command_line
from sdnet.data.imageset import ImageSet, seeded_generator

PAD = 4  # the paper's crop padding: offsets 0..8 in each direction, 81 positions


def random_crop_flip(images: Tensor, offsets: Tensor, flips: Tensor, pad: int = PAD) -> Tensor:
    """Crop ``images`` [B, C, H, W] zero-padded by ``pad`` at ``offsets`` [B, 2] (row, column of
    the window's corner in the padded image, 0..2*pad) and mirror those where ``flips`` [B] is True.

    Works on any dtype and device, in one gather (no per-image loop); the result is contiguous.
    """
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    width = w + 2 * pad
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    source = (rows[:, :, None] * width + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(padded.view(b, c, -1), 2, source).view(b, c, h, w)


class DeviceLoader:
    """Batches of an :class:`ImageSet` as float images in [0, 1] on ``device``.

    ``train=True``: a new order every epoch (see :meth:`set_epoch`), random crop + flip, and by
    default the incomplete last batch dropped. ``train=False``: in order, unchanged, every image
    once. With ``world_size`` > 1, each ``rank`` gets its own share of every epoch: in training
    the shares are equal (every rank must take the same number of optimiser steps; at most
    ``world_size - 1`` images of the epoch's order are left out); in evaluation they are the
    strided slices ``rank::world_size``, which cover every image exactly once (shares may differ
    by one image: sum the metrics across ranks, do not average per-rank means).
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        *,
        train: bool,
        device: str | torch.device = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool | None = None,
        channels_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)  # uint8: 4x less memory and traffic than float
        self.labels = data.labels.to(self.device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.epoch = 0
        self.size: int | None = None  # side of the training images this epoch (None: as stored)
        if train and len(self) == 0:
            raise ValueError(
                f"{data.name}: {len(data)} images give no full batch of {batch_size} per rank "
                f"({world_size} ranks); use a smaller batch_size or more images"
            )

    def set_epoch(self, epoch: int, size: int | None = None) -> None:
        """Select the epoch whose order and augmentation the next iteration uses, and the side
        ``size`` its (training) images are downscaled to after the crop (None: full size)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if size is not None and size < 1:
            raise ValueError(f"size must be >= 1 or None, got {size}")
        self.epoch, self.size = epoch, size

    def _shard_size(self) -> int:
        n = len(self.labels)
        return n // self.world_size if self.train else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def plan(self) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """This rank's image indices for the current epoch, in order, and for training each
        one's crop offsets [n, 2] and flip flags [n]: a pure function of (seed, epoch, rank)."""
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size), None, None
        # Every rank draws the same full permutation and augmentation, then takes its slice:
        # the shards are disjoint, and an image's augmentation does not depend on world_size.
        g = seeded_generator(self.seed, self.epoch)
        order = torch.randperm(n, generator=g)
        offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        mine = order[: self._shard_size() * self.world_size][self.rank :: self.world_size]
        return mine, offsets[mine], flips[mine]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        indices, offsets, flips = self.plan()
        indices = indices.to(self.device)
        if offsets is not None and flips is not None:
            offsets, flips = offsets.to(self.device), flips.to(self.device)
        for b in range(len(self)):
            part = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = indices[part]
            x = self.images.index_select(0, idx)
            if offsets is not None and flips is not None:
                x = random_crop_flip(x, offsets[part], flips[part])
            x = x.float().div_(255)
            if self.train and self.size is not None and self.size != x.shape[-1]:
                # antialiased bilinear downscaling (progressive resizing); the crop came first,
                # so an image keeps its augmentation whatever the epoch's size
                x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels.index_select(0, idx)


def benchmark(device: str | torch.device = "cpu", n: int = 50_000, batch_size: int = 512, epochs: int = 2) -> float:
    """Images/s of training epochs (shuffle, crop, flip, conversion to float) over ``n`` random
    CIFAR-sized images; the data loading alone, no model."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    data = ImageSet(images, torch.zeros(n, dtype=torch.long), ["x"], "random")
    loader = DeviceLoader(data, batch_size, train=True, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in loader:  # warm-up (allocator, kernels)
        pass
    sync()
    tic = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        for _ in loader:
            pass
    sync()
    return epochs * len(loader) * batch_size / (time.perf_counter() - tic)


@command_line
def main(argv: list[str] | None = None) -> None:
    """The command line of ``python -m sdnet.data``."""
    parser = argparse.ArgumentParser(prog="python -m sdnet.data", description="Throughput of the device-resident CIFAR loader.")
    parser.add_argument("--bench", action="store_true", help="measure images/s of a training epoch")
    parser.add_argument("--device", action="append", help="cpu, cuda, ... (repeatable; default: cpu and cuda when present)")
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args(argv)
    if not args.bench:
        parser.print_help()
        return
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        rate = benchmark(device, batch_size=args.batch_size)
        print(f"DeviceLoader on {device}: {rate:,.0f} images/s (training epoch of 50,000 32x32 images, batch {args.batch_size})")
