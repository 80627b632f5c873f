"""The rules every chapter's verdict follows, in one place, so that "holds" means one thing.

Two kinds of uncertainty, two rules:

- **Over seeds** (a difference between two networks, or a gain of a test-time knob, measured on
  each seed's networks): :func:`seed_verdict`. A gain holds when its mean over the seeds exceeds
  twice their standard deviation; on one seed nothing can be told from seed noise.
- **Over images** (two accuracies of the same networks on the same n images, e.g. robust accuracy
  at two lambdas): :func:`beyond_noise`. One exceeds the other when the difference is larger than
  twice the standard error of the difference of two binomial estimates (at least one image).
- **Both** (a gain measured per seed on one shared set of images, its image-sampling spread
  measured by a paired bootstrap): :func:`gain_verdict`. The seeds share the images, so their
  spread leaves the images' out; the two add, and the gain holds when it exceeds twice the
  combined spread (the seed rule when the images are many, the image rule on one network).

:func:`mean_std` writes "mean ± std" with the std over seeds, the one meaning "±" has in our
tables (a table that means anything else says so in its title).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

VERDICTS = ("holds", "does not hold", "not shown", "weak", "not tested")  # how every verdict starts


def mean_std(values: Sequence[float], digits: int = 1, sign: bool = False) -> str:
    """"mean ± std" over seeds ("mean" alone for one seed); ``sign``: a leading + on gains."""
    v = np.asarray(values, dtype=float)
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    return fmt.format(v.mean()) if len(v) == 1 else f"{fmt.format(v.mean())} ± {v.std(ddof=1):.{digits}f}"


def seed_sd(values: Sequence[float]) -> float:
    """The standard deviation over seeds (sample, ddof 1); 0 for one seed."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def seed_verdict(gains: Sequence[float], what: str = "points") -> str:
    """The verdict on a gain measured once per seed: ``holds`` (mean > 2 std), ``not shown`` (positive
    within that), ``does not hold`` (mean <= 0); one seed cannot be told from seed noise."""
    g = np.asarray(gains, dtype=float)
    if len(g) == 1:
        return f"not shown: {g[0]:+.1f} {what} on one seed cannot be told from seed noise"
    mean, std = g.mean(), g.std(ddof=1)
    spread = f"{mean:+.1f} ± {std:.1f} {what} over {len(g)} seeds"
    if mean > 2 * std and mean > 0:
        return f"holds: {spread} (beyond twice the spread)"
    if mean > 0:
        return f"not shown: {spread} (within twice the spread)"
    return f"does not hold: {spread}"


def binomial_variance(p: float, n: int) -> float:
    """Variance (points^2) of an accuracy of ``p`` % measured on ``n`` images."""
    p = min(max(p, 0.0), 100.0)
    return p * (100 - p) / n


def beyond_noise(b: float, a: float, n: int) -> bool:
    """Whether accuracy ``b`` exceeds accuracy ``a`` (both % on ``n`` images) by more than twice
    the standard error of ``b - a`` (and by at least one image)."""
    return b - a > max(2 * math.sqrt(binomial_variance(a, n) + binomial_variance(b, n)), 100 / n)


def paired_beyond_noise(b: Sequence[float], a: Sequence[float]) -> bool:
    """Whether per-image scores ``b`` exceed ``a`` *on the same images* (e.g. which images two
    attacks leave robust, or the difference of two such differences) by more than twice the
    standard error of their mean difference, and by at least one image: tighter than
    :func:`beyond_noise` where the two mostly agree image by image."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(d) < 2:
        return False
    return d.mean() > max(2 * d.std(ddof=1) / math.sqrt(len(d)), 1 / len(d))


def noise_level(p: float, n: int) -> float:
    """Two standard errors of one accuracy ``p`` % on ``n`` images (at least one image)."""
    return max(2 * math.sqrt(binomial_variance(p, n)), 100 / n)


def gain_verdict(mean: float, seed_sd: float, image_sd: float, *, seeds: int, what: str = "points", other: str = "the other side") -> str:
    """The verdict on a paired gain: ``holds`` when ``mean`` exceeds twice ``sqrt(seed_sd^2 +
    image_sd^2)`` (the spread over seeds and the bootstrap spread over images of the mean over
    seeds), ``does not hold`` when it is below minus that (``other`` is better beyond noise), ``not
    shown`` in between; on one seed, ``not shown`` unless the image spread alone rules it out and
    the verdict says it is one network."""
    total = math.hypot(seed_sd, image_sd)
    interval = f"{mean:+.1f} [{mean - 2 * total:+.1f}, {mean + 2 * total:+.1f}] {what}"
    basis = f"over {seeds} seeds and the images" if seeds > 1 else "on one network, over the images only"
    if seeds > 1 or total > 0:
        if mean > 2 * total:
            return f"holds: {interval} ({basis})"
        if mean < -2 * total:
            return f"does not hold: {interval}, {other} better beyond noise ({basis})"
    return f"not shown: {interval}, within noise ({basis})"


def verdict_kind(verdict: str) -> str:
    """What a verdict says, without its numbers: the words before its first colon
    ("holds: +4.1 points ..." -> "holds")."""
    return str(verdict).split(":", 1)[0].strip()


def verdicts_moved(earlier, now, label: str) -> str:
    """One Markdown line comparing two verdict tables (columns ``claim`` and ``verdict``) claim by
    claim: which verdicts changed in kind (:func:`verdict_kind`), which stayed, which claims are new."""
    before = dict(zip(earlier["claim"], earlier["verdict"]))
    moved, same, new = [], [], []
    for claim, verdict in zip(now["claim"], now["verdict"]):
        if claim not in before:
            new.append(f"\u201c{claim}\u201d")
        elif verdict_kind(before[claim]) == verdict_kind(verdict):
            same.append(f"\u201c{claim}\u201d ({verdict_kind(verdict)})")
        else:
            moved.append(f"\u201c{claim}\u201d: was \u201c{verdict_kind(before[claim])}\u201d, now \u201c{verdict_kind(verdict)}\u201d")
    parts = [f"moved for {len(moved)} of {len(now)} claims" + (": " + "; ".join(moved) if moved else "")]
    if same:
        parts.append("Unchanged: " + ", ".join(same))
    if new:
        parts.append("Not judged then: " + ", ".join(new))
    return f"**Against {label}:** the verdict " + ". ".join(parts) + "."
