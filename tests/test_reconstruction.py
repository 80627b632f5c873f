"""Chapter 1's comparison of dictionaries at equal sparsity (sdnet.reconstruction), checked against
independent computations: a least-squares fit for the scaled error, a layer run by hand for a
sweep, hand-made curves for the interpolation and the bootstrap."""

import math

import numpy as np
import pytest
import torch

import sdnet
from sdnet import reconstruction
from sdnet.chapters import layer_verdicts
from sdnet.reconstruction import Curve


def test_random_dictionaries_have_unit_atoms_and_are_reproducible():
    a = reconstruction.random_dictionaries((8, 3, 3, 3), 4, seed=1)
    assert len(a) == 4 and all(w.shape == (8, 3, 3, 3) for w in a)
    assert all(torch.allclose(w.flatten(1).norm(dim=1), torch.ones(8)) for w in a)
    assert all(torch.equal(u, v) for u, v in zip(a, reconstruction.random_dictionaries((8, 3, 3, 3), 4, seed=1)))
    state = torch.get_rng_state()
    reconstruction.random_dictionaries((2, 1, 3, 3), 1)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left alone


def test_scaled_error_is_the_least_squares_fit_with_scale_and_colour_offset():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 5, 5, dtype=torch.float64)
    r = 0.3 * x + 0.2 * torch.rand_like(x)
    for i in range(3):
        # min over s and one offset per channel of ||x - s r - c||^2, by least squares
        channel = np.repeat(np.arange(3), 25)  # the channel of each of the 75 values
        design = np.column_stack([r[i].reshape(-1).numpy()] + [(channel == k).astype(float) for k in range(3)])
        target = x[i].reshape(-1).numpy()
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        assert coef[0] > 0
        residual = ((target - design @ coef) ** 2).sum()
        centred = ((x[i] - x[i].mean(dim=(1, 2), keepdim=True)) ** 2).sum().item()
        assert reconstruction.scaled_error(x, r)[i].item() == pytest.approx(residual / centred, rel=1e-6)
    # computed in float32, like every image measure of sdnet.analysis
    assert reconstruction.scaled_error(x, 0.01 * x + 5).tolist() == pytest.approx([0.0] * 3, abs=1e-6)
    assert reconstruction.scaled_error(x, -x).tolist() == pytest.approx([1.0] * 3)  # no negative scaling


def test_sweep_measures_the_layer_as_it_runs():
    torch.manual_seed(0)
    weight = torch.randn(6, 3, 3, 3)
    x = torch.randn(4, 3, 8, 8)
    curve = reconstruction.sweep(weight, x, [0.0, 0.5], steps=3, name="w")
    layer = sdnet.CSCConv2d(3, 6, 3, padding=1, lam=0.5, n_steps=3)
    with torch.no_grad():
        layer.weight.copy_(weight)
        z = layer(x)
    assert torch.allclose(curve.zeros[1], (z == 0).flatten(1).float().mean(1))
    r = torch.nn.functional.conv_transpose2d(z, layer.weight, padding=1)
    assert torch.allclose(curve.error[1], reconstruction.scaled_error(x, r), atol=1e-6)
    objective = sdnet.csc.objective(x, z, layer.weight, lam=0.5, padding=1)
    assert torch.allclose(curve.objective[1], objective / (x.flatten(1).pow(2).sum(1) / 2), rtol=1e-5)
    assert curve.lipschitz == pytest.approx(layer.lipschitz.item(), rel=1e-3)
    assert curve.row(0.5)["zeros"] == pytest.approx(curve.zeros[1].mean().item())


def _curve(name, zeros, error):
    z, e = torch.tensor(zeros, dtype=torch.float64), torch.tensor(error, dtype=torch.float64)
    return Curve(name, 2, tuple(range(len(z))), z, e, e, e, 1.0)


def test_at_sparsity_interpolates_between_neighbours_and_never_extrapolates():
    assert reconstruction.at_sparsity([0.5, 0.7, 0.9], [0.1, 0.2, 0.6], 0.8) == pytest.approx(0.4)
    assert reconstruction.at_sparsity([0.7, 0.5, 0.9], [0.2, 0.1, 0.6], 0.6) == pytest.approx(0.15)  # in any order
    assert math.isnan(reconstruction.at_sparsity([0.5, 0.7], [0.1, 0.2], 0.95))
    assert math.isnan(reconstruction.at_sparsity([0.5, 0.7], [0.1, 0.2], 0.4))


def test_compare_at_sparsity_pairs_the_images_and_counts_the_random_dictionaries_beaten():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, size=(1, 50))  # per image: hard images are hard for every dictionary
    zeros = np.repeat([[0.4], [0.6], [0.8]], 50, axis=1)
    error = base + np.array([[0.0], [0.1], [0.2]])
    ours = [_curve("a", zeros, error), _curve("b", zeros, error + 0.01)]
    random = [_curve(f"r{k}", zeros, error + 0.05 + 0.02 * k) for k in range(5)]
    c = reconstruction.compare_at_sparsity(ours, random, 0.7, resamples=200)
    assert c.ours["a"] == pytest.approx(base.mean() + 0.15)
    assert c.random_mean - c.ours_mean == pytest.approx(0.05 + 0.04 - 0.005)
    assert c.beats == {"a": 5, "b": 5} and c.random_count == 5
    assert c.difference.low < c.difference.mean < c.difference.high < 0  # paired: the images' spread cancels
    assert c.difference.high - c.difference.low < 0.1
    out_of_range = reconstruction.compare_at_sparsity(ours, random, 0.95, resamples=10)
    assert math.isnan(out_of_range.ours_mean) and math.isnan(out_of_range.difference.low)


def test_two_step_share_and_the_verdict():
    two = _curve("s", [[0.5], [0.7]], [[0.2], [0.3]])
    converged = _curve("s", [[0.5], [0.7]], [[0.05], [0.1]])
    assert reconstruction.two_step_share(two, converged, 0.6) == pytest.approx(1 - 0.075 / 0.25)
    better = reconstruction.SparsityComparison(0.52, {"s": 0.1}, 0.1, 0.2, 0.1, 0.3, {"s": 7}, 10, reconstruction.Interval(-0.1, -0.15, -0.05))
    same = reconstruction.SparsityComparison(0.52, {"s": 0.2}, 0.2, 0.2, 0.1, 0.3, {"s": 5}, 10, reconstruction.Interval(0.0, -0.05, 0.05))
    kinds = {(name, z): layer_verdicts.reconstruction_verdict(c, c, 0.9, z, 0.47).split(":")[0]
             for name, c in (("better", better), ("same", same)) for z in (0.53, 0.48)}
    assert kinds == {("better", 0.53): "holds", ("better", 0.48): "weak", ("same", 0.53): "weak", ("same", 0.48): "does not hold"}
    verdict = layer_verdicts.reconstruction_verdict(better, better, 0.9, 0.53, 0.47)
    assert "0.100 of the variance unexplained after the best scaling against 0.200 for random dictionaries" in verdict
    assert "90% of the 2-step error is the two-step budget" in verdict
