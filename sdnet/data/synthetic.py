"""The embedded default dataset: 10 classes of synthetic 32x32 colour images, made from a seed.

Why: nothing can be downloaded on the machines the quick pipeline targets, yet every chapter
needs images with the statistics that make a CSC layer interesting: edges, oriented textures and
colour, on cluttered backgrounds. So every image is an object drawn on a smooth, random,
colourful background, with label-independent distractor blobs:

| class | object |
|---|---|
| 0, 1, 2 | a grating patch: vertical, horizontal, or diagonal (either diagonal, so that a horizontal flip keeps the label), +- 12 degrees, random frequency and phase |
| 3 | a bullseye (concentric rings) |
| 4 | a filled disk |
| 5 | a ring |
| 6 | a square outline, rotated up to 30 degrees |
| 7 | a cross, rotated up to 30 degrees |
| 8 | a checkerboard patch |
| 9 | an elongated bar at any angle |

Nuisances that carry no label: position, size, colours (the object's always differs from the
background's by 0.3..0.7 per channel), contrast (0.6..1), background texture, 0-2 distractor blobs.
Bars vs gratings, rings vs bullseyes vs disks and tilted squares vs crosses are what keep a small
network from 100% within a minute of CPU training; additive pixel noise destroys the fine
gratings and thin outlines first, so the noise-robustness chapter has something to measure.
Everything is generated in vectorised torch code from a ``torch.Generator``: the same seed gives
the same bytes, in about a second.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdnet.data.imageset import ImageSet

CLASSES = ["vertical grating", "horizontal grating", "diagonal grating", "bullseye", "disk", "ring", "square", "cross", "checkerboard", "bar"]
NAME = "synthetic (embedded)"


def _soft(d: Tensor, sharpness: float = 12.0) -> Tensor:
    """A soft step: ~1 where ``d`` > 0, ~0 where ``d`` < 0, anti-aliased over about a pixel."""
    return torch.sigmoid(d * sharpness)


def _uniform(g: torch.Generator, n: int, low: float, high: float, *shape: int) -> Tensor:
    return low + (high - low) * torch.rand(n, *shape, generator=g)


def _object_masks(label: int, n: int, yy: Tensor, xx: Tensor, g: torch.Generator) -> Tensor:
    """Coverage in [0, 1] of ``n`` objects of class ``label``; yy, xx are [1, S, S] in [-1, 1]."""
    cy, cx = (_uniform(g, n, -0.35, 0.35, 1, 1) for _ in range(2))
    r = _uniform(g, n, 0.45, 0.75, 1, 1)
    dy, dx = yy - cy, xx - cx
    dist = torch.sqrt(dy**2 + dx**2)
    theta = _uniform(g, n, -math.pi / 6, math.pi / 6, 1, 1)  # in-plane rotation jitter
    u, v = dx * torch.cos(theta) + dy * torch.sin(theta), -dx * torch.sin(theta) + dy * torch.cos(theta)
    window = _soft(r - dist)
    if label == 3:  # bullseye: concentric rings
        freq, phase = _uniform(g, n, 3.0, 4.5, 1, 1), _uniform(g, n, 0, 2 * math.pi, 1, 1)
        return window * (0.5 + 0.5 * torch.cos(math.pi * freq * dist + phase))
    if label <= 2:  # a grating in a round window: vertical, horizontal, or either diagonal
        base = {0: 0.0, 1: math.pi / 2}.get(label)
        if base is None:  # both diagonals are one class, so a horizontal flip keeps the label
            base = math.pi / 4 + (math.pi / 2) * (torch.rand(n, 1, 1, generator=g) < 0.5).float()
        angle = base + _uniform(g, n, -0.21, 0.21, 1, 1)
        freq, phase = _uniform(g, n, 2.5, 5.0, 1, 1), _uniform(g, n, 0, 2 * math.pi, 1, 1)
        wave = torch.sin(math.pi * freq * (dx * torch.cos(angle) + dy * torch.sin(angle)) + phase)
        return window * (0.5 + 0.5 * wave)
    if label == 4:  # disk
        return _soft(0.8 * r - dist)
    if label == 5:  # ring
        return _soft(0.8 * r - dist) * _soft(dist - 0.5 * r)
    if label == 6:  # square outline
        box = torch.maximum(u.abs(), v.abs())
        return _soft(0.12 - (box - 0.7 * r).abs())
    if label == 7:  # cross
        arm = 0.13
        return torch.maximum(_soft(arm - u.abs()) * _soft(r - v.abs()), _soft(arm - v.abs()) * _soft(r - u.abs()))
    if label == 8:  # checkerboard patch
        freq = _uniform(g, n, 2.0, 3.5, 1, 1)
        cells = torch.sin(math.pi * freq * u) * torch.sin(math.pi * freq * v)
        return window * _soft(cells, 6.0)
    # bar at any angle
    angle = _uniform(g, n, 0, math.pi, 1, 1)
    along = dx * torch.cos(angle) + dy * torch.sin(angle)
    across = -dx * torch.sin(angle) + dy * torch.cos(angle)
    return _soft(0.1 - across.abs()) * _soft(r - along.abs())


def _backgrounds(n: int, yy: Tensor, xx: Tensor, g: torch.Generator) -> Tensor:
    """Smooth colourful clutter: a base colour plus a few random low-frequency waves per channel."""
    base = _uniform(g, n, 0.15, 0.85, 3, 1, 1)
    field = torch.zeros(n, 3, yy.shape[-2], xx.shape[-1])
    for _ in range(3):
        fy, fx = _uniform(g, n, -2.0, 2.0, 1, 1, 1), _uniform(g, n, -2.0, 2.0, 1, 1, 1)
        phase = _uniform(g, n, 0, 2 * math.pi, 1, 1, 1)
        amp = _uniform(g, n, 0.0, 0.06, 3, 1, 1)
        field += amp * torch.sin(math.pi * (fy * yy + fx * xx) + phase)
    return base + field


def _distractors(n: int, yy: Tensor, xx: Tensor, g: torch.Generator, img: Tensor) -> Tensor:
    """Paint 0-3 small blobs of random colour at random places (independent of the label)."""
    for k in range(2):
        present = (torch.rand(n, 1, 1, 1, generator=g) < 0.5 - 0.2 * k).float()
        cy, cx = (_uniform(g, n, -0.9, 0.9, 1, 1, 1) for _ in range(2))
        radius = _uniform(g, n, 0.05, 0.1, 1, 1, 1)
        mask = present * _soft(radius - torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2))
        img = img + mask * (_uniform(g, n, 0.0, 1.0, 3, 1, 1) - img)
    return img


def generate(n: int, *, seed: int, size: int = 32) -> ImageSet:
    """``n`` images with balanced labels in random order, deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    axis = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = axis.view(1, size, 1), axis.view(1, 1, size)
    images = _backgrounds(n, yy, xx, g)
    # the object's colour differs from the background's base colour by 0.3..0.7 (circularly) in
    # every channel, so no object is invisible; its contrast still varies
    colour = (images.mean((2, 3), keepdim=True) + _uniform(g, n, 0.3, 0.7, 3, 1, 1)) % 1.0
    contrast = _uniform(g, n, 0.6, 1.0, 1, 1, 1)
    masks = torch.zeros(n, 1, size, size)
    for label in range(len(CLASSES)):  # vectorised within a class
        members = (labels == label).nonzero().flatten()
        if len(members):
            masks[members] = _object_masks(label, len(members), yy, xx, g).unsqueeze(1)
    images = images + contrast * masks * (colour - images)
    images = _distractors(n, yy.unsqueeze(0), xx.unsqueeze(0), g, images)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSet(pixels, labels, list(CLASSES), NAME)


def make_synthetic(n_train: int = 10_000, n_test: int = 2_000, *, seed: int = 0, size: int = 32) -> tuple[ImageSet, ImageSet]:
    """The embedded dataset's (train, test) splits: same distribution, independent draws."""
    if n_train < 1 or n_test < 1:
        raise ValueError("make_synthetic needs at least one training and one test image")
    return generate(n_train, seed=2 * seed, size=size), generate(n_test, seed=2 * seed + 1, size=size)
