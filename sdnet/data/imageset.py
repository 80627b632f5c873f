"""``ImageSet``: a whole split as one uint8 tensor, the common currency of the data modules.

Every dataset of the package (CIFAR, the JPEG copy, CIFAR-10-C, the synthetic set) is small
enough to hold as a single ``uint8 [N, 3, H, W]`` tensor. Keeping it in that form (rather than a
list of per-image objects) is what lets the loader move a split to the GPU once and augment whole
batches there, and lets the corruptions act on a split in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sdnet.config import SdnetError


class DataError(SdnetError, RuntimeError):
    """Dataset files are corrupt, truncated, or not the official ones (the message says what to do)."""


@dataclass
class ImageSet:
    """A split of an image classification dataset, held as tensors (no per-image objects).

    ``images``: uint8 [N, 3, H, W], contiguous, on the CPU; ``labels``: int64 [N];
    ``classes``: the class names (``labels`` index into it); ``name``: how tables and figures
    label the data (e.g. "CIFAR-10", "CIFAR-10 (JPEG copy)").
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"ImageSet.images must be uint8 [N, 3, H, W], got {self.images.dtype} {list(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"ImageSet.labels must have shape [{len(self.images)}], got {list(self.labels.shape)}")
        if self.labels.is_floating_point() or self.labels.is_complex():
            raise ValueError(f"ImageSet.labels must be integers, got {self.labels.dtype}")
        self.images = self.images.contiguous()
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, selection: int | Sequence[int] | torch.Tensor) -> ImageSet:
        """The first ``selection`` images (an int; all of them if there are fewer), or the images
        at the given indices (a sequence or an integer tensor), as a new ImageSet."""
        if isinstance(selection, bool):
            raise TypeError("ImageSet.subset takes a count or indices, not a bool")
        if isinstance(selection, int):
            if selection < 0:
                raise ValueError(f"ImageSet.subset needs a count >= 0, got {selection}")
            index: slice | torch.Tensor = slice(0, selection)
        else:
            index = torch.as_tensor(selection, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index], list(self.classes), self.name)

    def balanced_indices(self, n: int) -> torch.Tensor:
        """Indices of a class-balanced selection of ``n`` images, in the split's order.

        Every class gives its first ``n // C`` images (the first ``n % C`` classes one more; a class
        with too few gives all it has and the others make up the rest), so a subset never depends
        on how the split happens to be ordered: the first 4000 images of a split sorted by class
        are 4000 airplanes, ``balanced_indices(4000)`` is 400 of each class. On a split whose
        labels already cycle through the classes it is simply the first ``n``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"a balanced subset needs a count >= 0, got {n!r}")
        n = min(n, len(self))
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        take = [0] * len(counts)
        while sum(take) < n:  # deal one image per class in turn, skipping exhausted classes
            for c in range(len(counts)):
                if sum(take) < n and take[c] < counts[c]:
                    take[c] += 1
        rank = torch.empty_like(self.labels)  # each image's position within its class
        for c in range(len(counts)):
            members = (self.labels == c).nonzero().squeeze(1)
            rank[members] = torch.arange(len(members))
        chosen = rank < torch.tensor(take)[self.labels]
        return chosen.nonzero().squeeze(1)

    def balanced(self, n: int) -> ImageSet:
        """A class-balanced subset of ``n`` images (:meth:`balanced_indices`)."""
        return self.subset(self.balanced_indices(n))

    def __repr__(self) -> str:
        n, _, h, w = self.images.shape
        return f"ImageSet({self.name!r}, {n} images {h}x{w}, {len(self.classes)} classes)"


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` whose stream depends on every key (e.g. ``seed, epoch``).

    Mixing through numpy's SeedSequence (rather than, say, ``seed * K + epoch``) keeps the
    streams of different key tuples unrelated, with no arithmetic collisions between them.
    """
    if any(k < 0 for k in keys):
        raise ValueError(f"seeds must be >= 0, got {keys}")
    state = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))
