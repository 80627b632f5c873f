"""``ImageSet``: a whole split as one uint8 tensor, the common currency of the data modules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """A split of an image classification dataset, held as uint8 tensors (no per-image objects).

    ``images``: uint8 [N, 3, H, W], contiguous, on the CPU; ``labels``: int64 [N];
    ``classes``: the class names; ``name``: how tables and figures label the data.
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
        self.images = self.images.contiguous()
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, selection: int | Sequence[int] | torch.Tensor) -> ImageSet:
        """The first ``selection`` images (an int), or the images at the given indices."""
        index = slice(0, selection) if isinstance(selection, int) else torch.as_tensor(selection, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.name)
