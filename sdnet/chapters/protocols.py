"""Two protocols for a knob tuned per condition: chosen on the scored images, or held out.

The paper tunes SDNet's test-time lambda per noise condition (and per attack radius) and reports
the accuracy at the best lambda *on the images it was chosen on*: an oracle, which a user facing
a new image cannot run, and which is biased upwards by the selection itself (the best of many
noisy accuracies is an optimistic estimate of any of them). The held-out protocol answers what a
user would get: the test images are split into two disjoint, class-balanced halves
(:func:`halves`); the knob is chosen on one half and scored on the other, both ways round, and the
two scores are averaged (two-fold cross-fitting: every image is scored exactly once, with a knob
chosen without it).

Tables here are tidy: one row per condition (``keys``), knob value and half, with the score (an
accuracy in %) and ``images`` (the half's size). :func:`pooled` averages the halves back into the
whole subset (the paper's table); :func:`tune` returns both protocols side by side. The same
functions tune SDNet's lambda and the strength of a test-time filter in front of ResNet-18
(:mod:`sdnet.denoise`), so a rival is tuned exactly like the method it is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

HALF, IMAGES = "half", "images"


def halves(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Indices of two disjoint halves of ``labels`` with (nearly) the same classes: the images of
    each class in order, alternately to the first and the second half."""
    labels = torch.as_tensor(labels)
    first, second = [], []
    for c in labels.unique(sorted=True):
        where = (labels == c).nonzero().flatten()
        first.append(where[0::2])
        second.append(where[1::2])
    return torch.cat(first).sort().values, torch.cat(second).sort().values


def pooled(table: pd.DataFrame, scores: Sequence[str]) -> pd.DataFrame:
    """The halves of ``table`` averaged (weighted by their ``images``) into one row per the other
    columns: the ``scores`` measured on the whole subset."""
    if HALF not in table.columns:
        return table
    keys = [c for c in table.columns if c not in (HALF, IMAGES, *scores)]
    weights = table[IMAGES].astype(float)
    weighted = table[scores].mul(weights, axis=0).assign(_w=weights)
    for k in keys:
        weighted[k] = table[k]
    summed = weighted.groupby(keys, sort=False, dropna=False).sum(numeric_only=True)
    out = summed[scores].div(summed["_w"], axis=0).reset_index()
    out[IMAGES] = summed["_w"].to_numpy().astype(int)
    return out


def _best(part: pd.DataFrame, knob: str, score: str) -> pd.Series:
    """The row of the highest score; the smallest knob on a tie (the mildest setting)."""
    return part.sort_values([score, knob], ascending=[False, True], kind="stable").iloc[0]


def tune(table: pd.DataFrame, keys: Sequence[str], knob: str, score: str) -> pd.DataFrame:
    """Per condition ``keys``: the knob chosen two ways and the score each earns.

    - ``same``: chosen on the whole subset and scored there (the paper's protocol): columns
      ``<knob>_same`` and ``<score>_same``;
    - ``held``: chosen on one half, scored on the other, both ways round and averaged: columns
      ``<knob>_held0`` (chosen on half 1, scored on half 0), ``<knob>_held1`` and ``<score>_held``.

    ``table`` has one row per condition, knob value and half (:data:`HALF` 0 and 1), with the
    score and :data:`IMAGES`.
    """
    keys = list(keys)
    rows = []
    table = table[keys + [knob, score, HALF, IMAGES]]
    for condition, part in table.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, condition if isinstance(condition, tuple) else (condition,)))
        best = _best(pooled(part, [score]), knob, score)
        row[f"{knob}_same"], row[f"{score}_same"] = best[knob], best[score]
        held, weight = 0.0, 0
        for h in (0, 1):
            chosen = _best(part[part[HALF] == 1 - h], knob, score)[knob]
            scored = part[(part[HALF] == h) & np.isclose(part[knob], chosen)].iloc[0]
            row[f"{knob}_held{h}"] = chosen
            held += scored[score] * scored[IMAGES]
            weight += scored[IMAGES]
        row[f"{score}_held"] = held / weight
        rows.append(row)
    return pd.DataFrame(rows)


def at_edge(values: Sequence[float], grid: Sequence[float]) -> bool:
    """Whether any chosen value is the grid's largest (the best may lie beyond it)."""
    return bool(np.isclose(np.asarray(values, dtype=float), max(grid)).any())
