"""Does a dictionary's sparse code reconstruct the image? Judged fairly, against random dictionaries
(chapter 1).

Two traps make a direct comparison of "the learned dictionary" with "a random one" at one lambda
unfair, and both are avoided here:

* **Sparsity.** At the same lambda two dictionaries give codes of different sparsity (the threshold
  is ``lambda * t`` with ``t = 0.9 / L``, and ``L`` differs), and a sparser code reconstructs
  less. So each dictionary is swept over lambda (:func:`sweep`) and its reconstruction error read
  *at a given fraction of zeros* (:func:`at_sparsity`): curves, compared at equal sparsity.
* **Scale.** Two unrolled steps from ``z = 0`` go only part of the way to the minimiser, so the
  2-step reconstruction ``A z`` comes out at a lower contrast than the image (more so for a
  coherent dictionary, whose large ``L`` makes the step small). A squared error counts that as lost
  structure; :func:`scaled_error` is the error after the best non-negative scaling and colour
  offset, ``1 - correlation^2``: what the code fails to describe, whatever its contrast.

And the 2-step code is compared with the converged one (many steps) of the same dictionary at the
same sparsity, which says how much of the error is the two-step budget rather than the dictionary.

Uncertainty: :func:`compare_at_sparsity` puts a 95% interval on "learned minus random" by a
bootstrap that resamples both the images (the same images for every dictionary: paired) and the
random dictionaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sdnet.analysis import Interval, correlation, unexplained_variance
from sdnet.csc import CSCConv2d


def random_dictionaries(shape: tuple[int, ...], count: int, seed: int = 0) -> list[Tensor]:
    """``count`` dictionaries of ``shape`` (``[atoms, channels, k, k]``) with i.i.d. Gaussian entries
    scaled to unit atoms: each atom uniformly distributed on the unit sphere, the usual random
    dictionary. Drawn from their own generator, so the global RNG is left alone."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        w = torch.randn(shape, generator=g, dtype=torch.float32)
        out.append(w / torch.linalg.vector_norm(w, dim=tuple(range(1, w.dim())), keepdim=True))
    return out


def scaled_error(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Per image, the unexplained variance after the best non-negative scaling of the reconstruction
    and the best colour offset: ``min_{s >= 0, c} ||x - s * x_hat - c||^2 / ||x - mean colour||^2``,
    which is ``1 - max(correlation, 0)^2`` (:func:`sdnet.analysis.correlation`). 0: the image up to
    contrast and colour; 1: nothing of the image (a flat image, or one unrelated to it)."""
    return 1 - correlation(x, reconstruction).clamp_min(0).pow(2)


@dataclass(frozen=True)
class Curve:
    """One dictionary swept over lambda at a fixed number of solver steps: per lambda (rows) and
    image (columns), the code's fraction of zeros, :func:`scaled_error`, the plain unexplained
    variance and the CSC objective relative to that of the zero code (``objective / (||x||^2/2)``)."""

    name: str
    steps: int
    lambdas: tuple[float, ...]
    zeros: Tensor
    error: Tensor
    unexplained: Tensor
    objective: Tensor
    lipschitz: float

    def row(self, lam: float) -> dict[str, float]:
        """The mean over images at one lambda of the sweep."""
        i = self.lambdas.index(lam)
        return {"zeros": self.zeros[i].mean().item(), "scaled error": self.error[i].mean().item(),
                "unexplained variance": self.unexplained[i].mean().item(), "objective / objective at z=0": self.objective[i].mean().item()}


@torch.no_grad()
def sweep(weight: Tensor, x: Tensor, lambdas: list[float], steps: int, name: str = "") -> Curve:
    """The 2-step (or ``steps``-step) code of ``x`` in the dictionary ``weight`` (``[atoms, C, k, k]``,
    odd ``k``, stride 1, zero padding ``k // 2``: a stem's shape) at every lambda of ``lambdas``."""
    atoms, channels, k, _ = weight.shape
    layer = CSCConv2d(channels, atoms, k, padding=k // 2, n_steps=steps)
    layer.weight.copy_(weight.float())
    energy = x.float().flatten(1).pow(2).sum(1) / 2
    rows = {"zeros": [], "error": [], "unexplained": [], "objective": []}
    for lam in lambdas:
        layer.lam = lam
        layer(x)
        r = layer.reconstruction()
        rows["zeros"].append(layer.sparsity())
        rows["error"].append(scaled_error(x, r))
        rows["unexplained"].append(unexplained_variance(x, r))
        rows["objective"].append(layer.objective() / energy)
    return Curve(name, steps, tuple(lambdas), *(torch.stack(rows[k]) for k in ("zeros", "error", "unexplained", "objective")),
                 lipschitz=layer.lipschitz.item())


def at_sparsity(zeros: Tensor | np.ndarray, error: Tensor | np.ndarray, target: float) -> float:
    """The error of a curve at the fraction of zeros ``target``: linear between the two lambdas whose
    mean fractions of zeros bracket it (``zeros`` and ``error``: one value per lambda); NaN outside
    the curve's range (never extrapolated)."""
    zeros, error = np.asarray(zeros, dtype=float), np.asarray(error, dtype=float)
    order = np.argsort(zeros, kind="stable")
    zeros, error = zeros[order], error[order]
    if not zeros[0] <= target <= zeros[-1]:
        return math.nan
    return float(np.interp(target, zeros, error))


def curve_at(curve: Curve, target: float, images: np.ndarray | None = None) -> float:
    """:func:`at_sparsity` of ``curve``'s means over ``images`` (indices; all by default)."""
    zeros, error = curve.zeros.double().numpy(), curve.error.double().numpy()
    if images is not None:
        zeros, error = zeros[:, images], error[:, images]
    return at_sparsity(zeros.mean(1), error.mean(1), target)


@dataclass(frozen=True)
class SparsityComparison:
    """Dictionaries against random ones at one fraction of zeros: the error of each of ``ours`` and
    their mean, the random dictionaries' mean and range, how many random dictionaries each of ours
    beats, and ``difference`` (our mean minus the random mean) with its bootstrap interval."""

    target: float
    ours: dict[str, float]
    ours_mean: float
    random_mean: float
    random_min: float
    random_max: float
    beats: dict[str, int]
    random_count: int
    difference: Interval


def compare_at_sparsity(ours: list[Curve], random: list[Curve], target: float, *, resamples: int = 1000,
                        seed: int = 0) -> SparsityComparison:
    """``ours`` (e.g. a trained stem per seed) against ``random`` dictionaries at the fraction of zeros
    ``target``, all swept on the same images. The interval on the difference of means is the 2.5-97.5
    percentile range of a bootstrap that draws the images (one draw for every curve: the comparison
    is paired) and the random dictionaries with replacement; draws where a curve does not reach
    ``target`` are left out (a NaN difference when none does)."""
    n_images = ours[0].zeros.shape[1]
    mine = {c.name: curve_at(c, target) for c in ours}
    theirs = np.array([curve_at(c, target) for c in random])
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        images = rng.integers(0, n_images, n_images)
        picked = rng.integers(0, len(random), len(random))
        a = np.mean([curve_at(c, target, images) for c in ours])
        b = np.mean([curve_at(random[j], target, images) for j in picked])
        if math.isfinite(a) and math.isfinite(b):
            draws.append(a - b)
    ours_mean, random_mean = float(np.mean(list(mine.values()))), float(np.mean(theirs))
    low, high = (np.percentile(draws, [2.5, 97.5]).tolist() if draws else (math.nan, math.nan))
    return SparsityComparison(
        target=target, ours=mine, ours_mean=ours_mean, random_mean=random_mean,
        random_min=float(np.min(theirs)), random_max=float(np.max(theirs)),
        beats={name: int(np.sum(value < theirs)) for name, value in mine.items()}, random_count=len(random),
        difference=Interval(ours_mean - random_mean, low, high))


def two_step_share(two_steps: Curve, converged: Curve, target: float) -> float:
    """The part of the 2-step code's error at the fraction of zeros ``target`` that the same
    dictionary's converged code does not make: ``1 - converged / two steps`` (1: all of the error
    is the two-step budget; 0: none of it)."""
    e2, ec = curve_at(two_steps, target), curve_at(converged, target)
    return 1 - ec / e2 if e2 > 0 else math.nan
