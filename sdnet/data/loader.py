"""A loader that keeps a whole split on the device and augments whole batches there.

CIFAR fits in GPU memory many times over (50,000 x 3 x 32 x 32 bytes = 154 MB), so the usual
worker processes, per-image PIL transforms and host-to-device copies are pure overhead. The
paper's augmentation (random 32x32 crop of the image zero-padded by 4, horizontal flip with
probability 1/2) becomes two gathers on a batch. Order and augmentation are drawn from a CPU
generator seeded by (seed, epoch), so they are the same on every device and a resumed run sees
exactly the batches an uninterrupted one would.

    python -m sdnet.data.loader --bench      # images/s of a training epoch
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator

import torch
from torch import Tensor

from sdnet.data.imageset import ImageSet

PAD = 4  # the paper's crop padding


def random_crop_flip(images: Tensor, offsets: Tensor, flips: Tensor, pad: int = PAD) -> Tensor:
    """Crop ``images`` [B,C,H,W] (zero-padded by ``pad``) at ``offsets`` [B,2] (row, col in
    0..2*pad) and mirror those with ``flips`` [B] True; one gather, no per-image loop."""
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)  # a flip reads the columns backwards
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class DeviceLoader:
    """Iterate over an :class:`ImageSet` in batches of float images in [0, 1] on ``device``.

    ``train=True``: reshuffled every epoch, random crop + flip, incomplete last batch dropped.
    ``train=False``: in order, unchanged, every image once. ``rank``/``world_size`` give each
    process of a distributed run its own equal share of every epoch.
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
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard_size(self) -> int:
        n = len(self.labels)
        # training shards are equal (every rank must run the same number of steps); evaluation
        # shards cover every image exactly once
        return n // self.world_size if self.train else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _plan(self) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """This rank's indices for the epoch and, for training, every image's crop and flip."""
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size), None, None
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=g)
        offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        mine = order[: self._shard_size() * self.world_size][self.rank :: self.world_size]
        return mine, offsets[mine], flips[mine]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        indices, offsets, flips = self._plan()
        indices = indices.to(self.device)
        if offsets is not None:
            offsets, flips = offsets.to(self.device), flips.to(self.device)
        for b in range(len(self)):
            part = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = indices[part]
            x = self.images[idx]
            if offsets is not None:
                x = random_crop_flip(x, offsets[part], flips[part])
            x = x.float().div_(255)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


def benchmark(device: str = "cpu", n: int = 50_000, batch_size: int = 512, epochs: int = 2) -> float:
    """Images/s of a training epoch (shuffle, crop, flip, to float) over ``n`` random CIFAR-sized images."""
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.zeros(n, dtype=torch.long), ["x"], "random")
    loader = DeviceLoader(data, batch_size, train=True, device=device)
    for _ in loader:  # warm-up
        pass
    if loader.device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, _ in loader:
            pass
    if loader.device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * len(loader) * batch_size / (time.perf_counter() - tic)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Throughput of the device-resident CIFAR loader.")
    p.add_argument("--bench", action="store_true", help="measure images/s of a training epoch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.bench:
        print(f"DeviceLoader on {args.device}: {benchmark(args.device):,.0f} images/s (train epoch: shuffle, crop, flip)")
