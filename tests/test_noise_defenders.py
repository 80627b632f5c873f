"""Chapter 3's defenders (sdnet.chapters.noise_defenders) against independent computations: the held-out
choice of sdnet.chapters.protocols.tune (pandas, one condition at a time), brute force for the defenders
that know less, and the bootstrap's bookkeeping."""

import numpy as np
import pandas as pd
import pytest

from sdnet.chapters.noise_defenders import DEFENDERS, Knob, compare, defend, fixed, half_accuracy, knob, resample_weights
from sdnet.chapters.protocols import tune
from sdnet.chapters.verdicts import gain_verdict

CONDITIONS = [("clean", 0), ("gaussian", 1), ("gaussian", 3), ("shot", 1), ("shot", 3)]


def random_knob(seed: int = 0, seeds: int = 2, values=(0.1, 0.3, 0.6, 1.0), images: int = 41) -> tuple[Knob, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.3, 0.9, size=(seeds, len(values), len(CONDITIONS), 1))  # each setting its own accuracy
    hits = rng.random((seeds, len(values), len(CONDITIONS), images)) < p
    in_half1 = np.arange(images) % 2 == 1
    return Knob("toy", np.array(values), list(range(seeds)), list(CONDITIONS), hits), in_half1


def tidy(k: Knob, in_half1: np.ndarray) -> pd.DataFrame:
    """The knob as the stage's table: one row per seed, value, condition and half, with top1 and images."""
    rows = []
    for s in range(len(k.seeds)):
        for v, value in enumerate(k.values):
            for c, (noise, severity) in enumerate(k.conditions):
                for h in (0, 1):
                    part = k.hits[s, v, c, in_half1 == bool(h)]
                    rows.append({"seed": s, "lam": value, "noise": noise, "severity": severity, "half": h, "images": len(part), "top1": 100 * part.mean()})
    return pd.DataFrame(rows)


def test_the_knob_is_rebuilt_from_the_stages_rows():
    k, in_half1 = random_knob()
    table = tidy(k, in_half1)
    rows = [k.hits[r.seed, list(k.values).index(r.lam), k.conditions.index((r.noise, r.severity)), in_half1 == bool(r.half)] for r in table.itertuples()]
    again = knob(table.sample(frac=1, random_state=0), [rows[i] for i in table.sample(frac=1, random_state=0).index], in_half1, "toy", "lam")
    assert again.conditions[0] == ("clean", 0) and set(again.conditions) == set(k.conditions)
    order = [again.conditions.index(c) for c in k.conditions]
    assert np.array_equal(again.hits[:, :, order], k.hits)


def test_the_condition_defender_is_protocols_tune_held_out():
    k, in_half1 = random_knob()
    sizes = (int((~in_half1).sum()), int(in_half1.sum()))
    acc = half_accuracy(k, resample_weights(in_half1, 0), in_half1)
    noises, noisy, clean, _ = defend(k, acc, sizes, "condition")
    table = tidy(k, in_half1)
    for s in range(2):
        tuned = tune(table[(table.seed == s) & (table.severity > 0)], ["noise", "severity"], "lam", "top1")
        for i, n in enumerate(noises):
            assert noisy[s, i, 0] == pytest.approx(tuned[tuned.noise == n]["top1_held"].mean())
        # clean cost: the clean accuracy (whole subset) at each held-out choice, scored on its own half
        clean_rows = table[(table.seed == s) & (table.noise == "clean")]
        expected = []
        for _, row in tuned.iterrows():
            for h in (0, 1):
                chosen = row[f"lam_held{h}"]
                part = clean_rows[(clean_rows.half == h) & np.isclose(clean_rows.lam, chosen)]
                expected.append(part["top1"].item() * sizes[h] / sum(sizes))
        assert clean[s, 0] == pytest.approx(sum(expected) / len(tuned))


def test_the_defenders_that_know_less_by_brute_force():
    k, in_half1 = random_knob(seed=3)
    sizes = (int((~in_half1).sum()), int(in_half1.sum()))
    acc = half_accuracy(k, resample_weights(in_half1, 0), in_half1)[..., 0, :]  # [S, V, C, H]
    for defender in ("noise", "nothing"):
        noises, noisy, clean, _ = defend(k, half_accuracy(k, resample_weights(in_half1, 0), in_half1), sizes, defender)
        for s in range(2):
            per_noise, cleans = [], []
            for n in noises:
                group = [i for i, c in enumerate(k.conditions) if c[0] == n] if defender == "noise" else [i for i, c in enumerate(k.conditions) if c[0] != "clean"]
                mine = [i for i, c in enumerate(k.conditions) if c[0] == n]
                score = 0.0
                for h in (0, 1):
                    means = [np.mean([acc[s, v, i, 1 - h] for i in group]) for v in range(len(k.values))]
                    v = int(np.argmax(means))  # the first maximum: the mildest
                    score += np.mean([acc[s, v, i, h] for i in mine]) * sizes[h] / sum(sizes)
                    cleans += [acc[s, v, 0, h] * sizes[h] / sum(sizes)] * len(mine)
                per_noise.append(score)
            np.testing.assert_allclose(noisy[s, :, 0], per_noise, rtol=1e-6)
            assert clean[s, 0] == pytest.approx(2 * np.mean(cleans), rel=1e-6)  # two halves per choice


def test_the_untuned_setting_and_the_bootstrap_keep_the_halves():
    k, in_half1 = random_knob(seed=5)
    w = resample_weights(in_half1, 50)
    assert w.shape == (len(in_half1), 51) and (w[:, 0] == 1).all()
    assert np.allclose(w[~in_half1].sum(0), (~in_half1).sum()) and np.allclose(w[in_half1].sum(0), in_half1.sum())
    sizes = (int((~in_half1).sum()), int(in_half1.sum()))
    acc = half_accuracy(k, w, in_half1)
    noises, noisy, clean, _ = fixed(k, acc, sizes, 0.3)
    whole = 100 * k.hits[:, 1].mean(-1)  # [S, C]: value 0.3, all images
    np.testing.assert_allclose(clean[:, 0], whole[:, 0], rtol=1e-6)
    np.testing.assert_allclose(noisy[:, 0, 0], whole[:, 1:3].mean(1), rtol=1e-6)


def test_a_comparison_is_paired_and_its_verdict_reads_its_interval():
    from sdnet.chapters.noise_defenders import Defended

    k, in_half1 = random_knob(seed=7, seeds=3)
    sizes = (int((~in_half1).sum()), int(in_half1.sum()))
    acc = half_accuracy(k, resample_weights(in_half1, 200), in_half1)
    a = Defended("a", "condition", *defend(k, acc, sizes, "condition"), k.values)
    c = compare(a, a)
    assert (c.noisy_gain == 0).all() and c.noisy_image_sd == 0  # a defence against itself: no noise at all
    b = Defended("b", "fixed", *fixed(k, acc, sizes, 0.1), k.values)
    c = compare(a, b)
    np.testing.assert_allclose(c.noisy_gain, a.mean_noisy()[:, 0] - b.mean_noisy()[:, 0])
    assert 0 < c.noisy_image_sd < 20
    assert set(DEFENDERS) == {"condition", "noise", "nothing"}
    assert len(a.chosen) == 3 * 4 * 2  # seeds, conditions, halves
    edge = Defended("e", "nothing", a.noises, a.noisy, a.clean, np.array([0.0, 0.2, 0.2, 1.5]), np.array([0.0, 0.2, 0.5, 1.5]))
    assert edge.at_edge() == ["1.5, the largest", "0.2, the smallest above none"]
    assert Defended("e", "nothing", a.noises, a.noisy, a.clean, np.array([0.5]), np.array([0.0, 0.2, 0.5, 1.5])).at_edge() == []


def test_gain_verdicts():
    assert gain_verdict(5.0, 1.0, 1.0, seeds=3).startswith("holds: +5.0 [+2.2, +7.8]")
    assert gain_verdict(2.0, 1.0, 1.0, seeds=3).startswith("not shown")
    assert gain_verdict(-2.0, 1.0, 1.0, seeds=3).startswith("not shown")
    assert gain_verdict(-5.0, 1.0, 1.0, seeds=3, other="the blur").startswith("does not hold: -5.0 [-7.8, -2.2] points, the blur better")
    assert "one network" in gain_verdict(5.0, 0.0, 1.0, seeds=1)


def test_a_measurement_on_the_first_images_of_each_half_is_placed_on_those_images():
    from sdnet.chapters.noise_defenders import first_of_halves

    in_half1 = np.array([0, 1, 0, 1, 0, 1, 0], dtype=bool)
    mask = first_of_halves(in_half1, 2)
    assert mask.tolist() == [True, True, True, True, False, False, False]
    table = pd.DataFrame([{"seed": 0, "lam": 0.1, "noise": "clean", "severity": 0, "half": h} for h in (0, 1)])
    k = knob(table, [np.array([True, False]), np.array([False, True])], in_half1, "short", "lam")
    assert k.hits[0, 0, 0].tolist() == [True, False, False, True, False, False, False]
