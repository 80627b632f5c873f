"""Test-time input filters: the rival a reader asks about before believing the test-time lambda.

Raising SDNet-18's lambda at test time smooths what its first layer sees. Would *any* test-time
smoothing in front of a plain ResNet-18 buy as much? The paper does not ask; chapters 3 and 4 do,
with the two classical denoisers, each with one strength knob tuned exactly like lambda:

- :func:`gaussian_blur`: a separable Gaussian of standard deviation ``sigma`` pixels, ``taps``
  taps per direction (5 by default: sigma <= 1.5 keeps over 90% of the kernel's mass inside),
  reflect padding (no dark border); ``sigma = 0`` is the identity;
- :func:`median_filter`: ``passes`` applications of a 3x3 median (per channel, reflect padding);
  ``passes = 0`` is the identity. Each pass removes more impulse noise and more fine detail.

Both are differentiable (the median passes its gradient to the pixel it selected), so an attacker
who knows the filter attacks through it (white-box), and :class:`Filtered` puts one in front of a
model with its strength as a test-time setting, like a CSC layer's lambda.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FILTERS = ("blur", "median")


def gaussian_kernel(sigma: float, taps: int = 5, dtype: torch.dtype = torch.float32) -> Tensor:
    """The normalised 1-D Gaussian of ``taps`` (odd) taps and standard deviation ``sigma`` > 0."""
    if taps < 1 or taps % 2 == 0:
        raise ValueError(f"taps must be a positive odd integer, got {taps}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    offsets = torch.arange(taps, dtype=torch.float64) - taps // 2
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_blur(x: Tensor, sigma: float, taps: int = 5) -> Tensor:
    """``x`` ([N, C, H, W]) blurred channel by channel; ``sigma = 0`` returns ``x`` itself."""
    if sigma == 0:
        return x
    kernel = gaussian_kernel(sigma, taps, x.dtype).to(x.device)
    channels, half = x.shape[1], taps // 2
    rows = kernel.view(1, 1, 1, taps).expand(channels, 1, 1, taps)
    cols = kernel.view(1, 1, taps, 1).expand(channels, 1, taps, 1)
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="reflect"), rows, groups=channels)
    return F.conv2d(F.pad(x, (0, 0, half, half), mode="reflect"), cols, groups=channels)


# A median of nine values by 19 compare-exchanges (Paeth's network, as in Devillard's opt_med9):
# elementwise min/max on whole images, an order of magnitude faster than sorting every window.
_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
            (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median_filter(x: Tensor, passes: int = 1) -> Tensor:
    """``passes`` applications of a 3x3 median to every channel of ``x`` ([N, C, H, W]);
    ``passes = 0`` returns ``x`` itself."""
    if passes != int(passes) or passes < 0:
        raise ValueError(f"passes must be an integer >= 0, got {passes}")
    for _ in range(int(passes)):
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        p = [padded[..., i : i + h, j : j + w] for i in range(3) for j in range(3)]
        for a, b in _MEDIAN9:
            p[a], p[b] = torch.minimum(p[a], p[b]), torch.maximum(p[a], p[b])
        x = p[4]
    return x


def apply_filter(x: Tensor, kind: str, strength: float) -> Tensor:
    """``x`` through the filter ``kind`` (one of :data:`FILTERS`) at ``strength`` (blur: sigma;
    median: passes)."""
    if kind == "blur":
        return gaussian_blur(x, strength)
    if kind == "median":
        if strength != math.floor(strength):
            raise ValueError(f"the median's strength is a number of passes, got {strength}")
        return median_filter(x, int(strength))
    raise ValueError(f"kind must be one of {FILTERS}, got {kind!r}")


class Filtered(nn.Module):
    """``model`` behind a test-time input filter: ``model(apply_filter(x, kind, strength))``.

    ``strength`` is a plain attribute, set for a block with :func:`at_strength` the way
    :func:`sdnet.csc.csc_lambda` sets a lambda; ``strength = 0`` is the undefended model. The
    filter runs in the model's input space (pixels in [0, 1]), before its normalisation.
    """

    def __init__(self, model: nn.Module, kind: str, strength: float = 0.0) -> None:
        super().__init__()
        if kind not in FILTERS:
            raise ValueError(f"kind must be one of {FILTERS}, got {kind!r}")
        self.model, self.kind, self.strength = model, kind, float(strength)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(apply_filter(x, self.kind, self.strength))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, strength={self.strength:g}"


@contextlib.contextmanager
def at_strength(model: Filtered, strength: float | None) -> Iterator[Filtered]:
    """The filter of ``model`` at ``strength`` for the block (``None``: as it is), then as before."""
    before = model.strength
    if strength is not None:
        model.strength = float(strength)
    try:
        yield model
    finally:
        model.strength = before
