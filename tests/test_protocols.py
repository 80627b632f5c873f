"""The two tuning protocols of sdnet.chapters.protocols, on tables whose answers are worked out by hand."""

import pandas as pd
import pytest
import torch

from sdnet.chapters.protocols import HALF, IMAGES, at_edge, halves, pooled, tune


def test_halves_are_disjoint_cover_everything_and_keep_the_classes():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    a, b = halves(labels)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(len(labels)))
    assert labels[a].bincount(minlength=3).tolist() == [2, 2, 3] and labels[b].bincount(minlength=3).tolist() == [2, 2, 2]


def table(scores: dict[tuple[str, float, int], float], images=(10, 10)) -> pd.DataFrame:
    return pd.DataFrame([{"noise": k, "lam": lam, HALF: h, "top1": v, IMAGES: images[h]} for (k, lam, h), v in scores.items()])


def test_pooled_weights_the_halves_by_their_images():
    t = table({("g", 0.1, 0): 50.0, ("g", 0.1, 1): 80.0}, images=(10, 30))
    out = pooled(t, ["top1"])
    assert len(out) == 1 and out["top1"].iloc[0] == pytest.approx((50 * 10 + 80 * 30) / 40) and out[IMAGES].iloc[0] == 40


def test_held_out_scores_each_half_at_the_other_halfs_choice():
    """Half 0 prefers lambda 0.2 (60 vs 50), half 1 prefers 0.4 (70 vs 40). On the whole set
    0.2 scores 50 and 0.4 scores 55: the paper's protocol picks 0.4 and reports 55. Held out,
    half 0 is scored at half 1's choice (0.4: 40) and half 1 at half 0's (0.2: 40): 40."""
    t = table({("g", 0.2, 0): 60.0, ("g", 0.4, 0): 40.0, ("g", 0.2, 1): 40.0, ("g", 0.4, 1): 70.0})
    row = tune(t, ["noise"], "lam", "top1").iloc[0]
    assert row["lam_same"] == 0.4 and row["top1_same"] == pytest.approx(55.0)
    assert row["lam_held0"] == 0.4 and row["lam_held1"] == 0.2 and row["top1_held"] == pytest.approx(40.0)


def test_a_consistent_best_setting_costs_nothing_held_out_and_ties_go_to_the_mildest():
    t = table({("g", 0.1, 0): 30.0, ("g", 0.5, 0): 60.0, ("g", 0.9, 0): 60.0, ("g", 0.1, 1): 20.0, ("g", 0.5, 1): 50.0, ("g", 0.9, 1): 50.0,
               ("s", 0.1, 0): 70.0, ("s", 0.5, 0): 10.0, ("s", 0.9, 0): 5.0, ("s", 0.1, 1): 80.0, ("s", 0.5, 1): 0.0, ("s", 0.9, 1): 0.0})
    out = tune(t, ["noise"], "lam", "top1").set_index("noise")
    assert out.loc["g", "lam_same"] == 0.5 and out.loc["g", "top1_same"] == out.loc["g", "top1_held"] == pytest.approx(55.0)
    assert out.loc["s", "lam_held0"] == out.loc["s", "lam_held1"] == 0.1 and out.loc["s", "top1_held"] == pytest.approx(75.0)


def test_held_out_never_beats_the_oracle_on_random_tables():
    """Choosing on the scored images is optimistic: on any table, the same-images score is at
    least the held-out one (it is the maximum of the pooled scores, and the held-out score is
    one pooled score per half at some knob)."""
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        values = torch.rand(6, 2, generator=g) * 100
        t = table({("g", 0.1 * (i + 1), h): float(values[i, h]) for i in range(6) for h in (0, 1)})
        row = tune(t, ["noise"], "lam", "top1").iloc[0]
        assert row["top1_same"] >= row["top1_held"] - 1e-9


def test_at_edge():
    assert at_edge([0.4, 1.4], [0.1, 0.4, 1.4]) and not at_edge([0.4], [0.1, 0.4, 1.4])
