"""Lambda sweeps, their tables, the lambda-vs-error fit (sdnet.evaluate, sdnet.robustness) and
adaptive lambda (sdnet.adaptive), on tiny models."""

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from sdnet import CSCConv2d, csc_lambda
from sdnet.models import Normalize
from toy_problem import train, two_colours
from sdnet.adaptive import AdaptiveLambda, compare_adaptive, leave_one_noise_out
from sdnet.csc import LayerChoice
from sdnet.evaluate import evaluating, lambda_sweep, model_device
from sdnet.robustness import LambdaFit, best_lambda_table, fit_lambda_vs_error, sweep, tidy


def adaptive_predict(
    model: nn.Module,
    x: Tensor,
    fit: LambdaFit,
    *,
    lambdas: Sequence[float],
    train_lam: float,
    per: str = "sample",
    layers: LayerChoice = None,
) -> tuple[Tensor, Tensor]:
    """(test helper) Logits of ``x`` with lambda chosen per sample (or per batch) by :class:`AdaptiveLambda`,
    and the lambda each sample got. The model runs in eval mode; its previous mode is restored."""
    adaptive = AdaptiveLambda(model, fit, lambdas, train_lam, per=per, layers=layers)
    with evaluating(model), torch.no_grad():
        logits = adaptive(x.to(model_device(model)))
    return logits, adaptive.last_lambdas


def tiny_sdnet(*, csc_layers: int = 1) -> nn.Sequential:
    """Normalise -> CSC -> BN (-> CSC -> BN) -> average pool -> linear: an SDNet in miniature."""
    torch.manual_seed(0)
    body = [CSCConv2d(3, 8, 3, padding=1, lam=0.1), nn.BatchNorm2d(8)]
    if csc_layers == 2:
        body += [CSCConv2d(8, 8, 3, padding=1, lam=0.1), nn.BatchNorm2d(8)]
    return nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), *body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    return train(tiny_sdnet())


@contextlib.contextmanager
def batch_sizes(*modules: nn.Module):
    """Per module, a list of the batch sizes it is called with inside the block."""
    calls: list[list[int]] = [[] for _ in modules]
    hooks = [
        m.register_forward_hook(lambda _module, inputs, _output, c=c: c.append(len(inputs[0])))
        for m, c in zip(modules, calls)
    ]
    try:
        yield calls
    finally:
        for h in hooks:
            h.remove()


# ---------------------------------------------------------------------------------------------
# lambda_sweep and the tables
# ---------------------------------------------------------------------------------------------


def test_lambda_sweep_follows_lambda_for_an_sdnet(trained):
    x, y = two_colours()
    rows = lambda_sweep(trained, [(x[:32], y[:32]), (x[32:], y[32:])], [0.0, 0.1, 1.0, 100.0], probe=True)
    assert [r["lam"] for r in rows] == [0.0, 0.1, 1.0, 100.0]
    sparsity = [r["sparsity"] for r in rows]
    errors = [r["recon_error"] for r in rows]
    assert sparsity == sorted(sparsity) and len(set(sparsity)) == 4
    assert errors == sorted(errors) and errors[0] < errors[-1]
    assert rows[1]["top1"] == 100.0  # the easy problem is learnt
    assert rows[-1]["top1"] == 50.0 and rows[-1]["sparsity"] == 1.0  # an all-zero code: one class for all
    assert trained[1].lam == 0.1 and not trained.training  # lambda and mode restored


def test_reported_error_is_the_layers_per_value_error(trained):
    x, y = two_colours(8)
    (row,) = lambda_sweep(trained, [(x, y)], [0.1], probe=True)
    with torch.no_grad():
        z = trained[1](trained[0](x))
        mse = (trained[0](x) - nn.functional.conv_transpose2d(z, trained[1].weight, padding=1)).pow(2).mean()
    assert row["recon_error"] == pytest.approx(mse.item(), rel=1e-4)
    assert trained[1].reconstruction_mse().shape == (8,)


def test_a_model_without_csc_layers_is_evaluated_once():
    torch.manual_seed(0)
    resnet_like = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    x, y = two_colours(16)
    with batch_sizes(resnet_like[-1]) as (calls,):
        rows = tidy(lambda_sweep(resnet_like, [(x, y)], [0.1, 0.5, 1.0], probe=True)).to_dict("records")
    assert calls == [16]
    assert len({r["top1"] for r in rows}) == 1 and all(math.isnan(r["sparsity"]) for r in rows)


def test_layers_choose_where_lambda_goes_and_what_is_measured():
    model = tiny_sdnet(csc_layers=2).eval()
    x, y = two_colours(8)
    rows = lambda_sweep(model, [(x, y)], [0.1, 5.0], layers=["3"], probe=True)
    assert rows[1]["sparsity"] > rows[0]["sparsity"]  # the second layer's code, at its lambda
    model(x)
    first = model[1].sparsity().mean().item()
    with csc_lambda(model, 5.0, ["3"]):
        model(x)
    assert model[1].sparsity().mean().item() == first  # the first layer kept its lambda
    with pytest.raises(ValueError, match="not CSC layers"):
        lambda_sweep(model, [(x, y)], [0.1], layers=["4"], probe=True)


def test_one_shot_iterators_are_refused(trained):
    x, y = two_colours(8)
    with pytest.raises(TypeError, match="re-iterable"):
        lambda_sweep(trained, iter([(x, y)]), [0.1, 0.2])


def test_sweep_and_its_best_lambda(trained):
    x, y = two_colours()
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    conditions = {("clean", 0): [(x, y)], ("gaussian", 1): [(noisy, y)]}
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    table = sweep({"tiny": trained, "plain": plain}, conditions, [0.1, 0.5, 1.0])
    assert list(table.columns) == ["model", "noise", "severity", "lam", "top1", "recon_error", "sparsity"]
    assert len(table) == 2 * 2 * 3

    best = best_lambda_table(table, train_lam=0.1)
    assert len(best) == 4
    for _, row in best.iterrows():
        rows = table[(table.model == row.model) & (table.noise == row.noise) & (table.severity == row.severity)]
        assert row.best_top1 == rows.top1.max()
        assert row.top1_train_lam == rows[rows.lam == 0.1].top1.item()
        if row.model == "tiny":  # the smallest lambda of the best accuracy
            assert row.best_lam == rows[rows.top1 == rows.top1.max()].lam.min()
        else:  # a model without lambda has no best lambda
            assert math.isnan(row.best_lam)


def test_tidy_puts_labels_first():
    frame = tidy([{"lam": 0.1, "top1": 50.0, "recon_error": 1.0, "sparsity": 0.5}], model="m", noise="shot", severity=2)
    assert list(frame.columns) == ["model", "noise", "severity", "lam", "top1", "recon_error", "sparsity"]


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------


def test_fit_recovers_a_known_line():
    errors = np.array([0.1, 0.2, 0.3, 0.5])
    slope, intercept, r2 = fit_lambda_vs_error(errors, 2.0 * errors + 0.05)
    assert (slope, intercept, r2) == pytest.approx((2.0, 0.05, 1.0))
    noisy = fit_lambda_vs_error(errors, 2.0 * errors + 0.05 + np.array([0.02, -0.02, 0.02, -0.02]))
    assert noisy.slope == pytest.approx(2.0, abs=0.3) and 0.9 < noisy.r2 < 1.0
    assert noisy.predict(np.array([0.0]))[0] == pytest.approx(noisy.intercept)
    with pytest.raises(ValueError, match="two different errors"):
        fit_lambda_vs_error([0.1, 0.1], [0.2, 0.3])


# ---------------------------------------------------------------------------------------------
# Adaptive lambda
# ---------------------------------------------------------------------------------------------


def half_noisy(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, LambdaFit]:
    """16 images, the last 8 noisy, and a line that sends clean errors to 0.1, noisy ones to 1.0."""
    x, y = two_colours(16, seed=2)
    g = torch.Generator().manual_seed(3)
    x[8:] = (x[8:] + 0.4 * torch.randn(x[8:].shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        model(x)
    error = model[1].reconstruction_mse()
    clean, noisy = error[:8].mean().item(), error[8:].mean().item()
    slope = 0.9 / (noisy - clean)
    return x, y, LambdaFit(slope, 0.1 - slope * clean, 1.0)


def test_adaptive_runs_each_group_once_at_its_own_lambda(trained):
    x, _, fit = half_noisy(trained)
    grid = [0.1, 0.3, 0.6, 1.0]
    adaptive = AdaptiveLambda(trained, fit, grid, train_lam=0.1)
    with torch.no_grad(), batch_sizes(trained[1], trained[-1]) as (csc_calls, classifier_calls):
        logits = adaptive(x)
    lams = adaptive.last_lambdas
    groups = lams.unique()
    assert len(groups) >= 2 and set(groups.tolist()) <= set(grid)
    assert lams[:8].mean() < lams[8:].mean()  # noisy images get the larger lambdas
    # one probe that stops after the CSC layer, then one full pass per group: no per-sample loop
    assert csc_calls[0] == 16 and len(classifier_calls) == len(groups) and sum(classifier_calls) == 16
    for i in range(len(x)):  # each sample alone at its lambda gives the same logits
        with torch.no_grad(), csc_lambda(trained, lams[i].item()):
            alone = trained(x[i : i + 1])[0]
        torch.testing.assert_close(logits[i], alone, rtol=1e-4, atol=1e-5)
    assert trained[1].lam == 0.1


def test_adaptive_per_batch_uses_one_lambda(trained):
    x, _, fit = half_noisy(trained)
    logits, lams = adaptive_predict(trained, x, fit, lambdas=[0.1, 0.3, 0.6, 1.0], train_lam=0.1, per="batch")
    assert len(lams.unique()) == 1
    with torch.no_grad(), csc_lambda(trained, lams[0].item()):
        torch.testing.assert_close(logits, trained(x), rtol=1e-4, atol=1e-5)


def test_adaptive_lambda_is_clipped_to_the_grid_and_refuses_training_mode(trained):
    x, _ = two_colours(4)
    always_large = LambdaFit(0.0, 50.0, 1.0)
    _, lams = adaptive_predict(trained, x, always_large, lambdas=[0.1, 0.4], train_lam=0.1)
    assert lams.tolist() == [0.4] * 4
    with pytest.raises(RuntimeError, match="eval mode"):
        AdaptiveLambda(trained, always_large, [0.1], 0.1).train()(x)
    trained.eval()
    with pytest.raises(ValueError, match="per must be"):
        AdaptiveLambda(trained, always_large, [0.1], 0.1, per="pixel")


def test_compare_adaptive_against_fixed_and_oracle(trained):
    x, y, fit = half_noisy(trained)
    conditions = {("clean", 0): [(x[:8], y[:8])], ("gaussian", 3): [(x[8:], y[8:])]}
    grid = [0.1, 0.3, 0.6, 1.0]
    result = compare_adaptive(trained, conditions, fit, grid, 0.1)
    assert list(result.columns) == [
        "noise", "severity", "fixed", "adaptive_sample", "adaptive_batch", "oracle", "lam_sample", "lam_batch", "oracle_lam",
        "correct_sample", "correct_batch",
    ]
    assert list(zip(result.noise, result.severity)) == [("clean", 0), ("gaussian", 3)]
    assert (result.oracle >= result.fixed).all()
    assert result.lam_batch.iloc[0] == pytest.approx(0.1) and result.lam_batch.iloc[1] > 0.1
    # the same numbers from a sweep done beforehand
    table = sweep({"tiny": trained}, conditions, grid)
    again = compare_adaptive(trained, conditions, fit, grid, 0.1, table=table)
    hits = ["correct_sample", "correct_batch"]
    pd.testing.assert_frame_equal(result.drop(columns=hits), again.drop(columns=hits))
    for c in hits:
        assert all(np.array_equal(a, b) for a, b in zip(result[c], again[c]))
        assert all(100 * a.mean() == pytest.approx(t) for a, t in zip(result[c], result[c.replace("correct", "adaptive")]))


def test_leave_one_noise_out_never_fits_on_the_noise_it_serves():
    best = pd.DataFrame({
        "noise": ["clean", "gaussian", "gaussian", "shot", "shot"],
        "severity": [0, 1, 5, 1, 5],
        "recon_error_train_lam": [0.1, 0.2, 0.4, 0.3, 0.6],
        "best_lam": [0.1, 0.3, 0.7, 0.3, 1.0],
    })
    fits = leave_one_noise_out(best)
    assert set(fits) == {"clean", "gaussian", "shot"}
    for noise, fit in fits.items():
        rest = best[best.noise != noise]
        assert tuple(fit) == pytest.approx(tuple(fit_lambda_vs_error(rest.recon_error_train_lam, rest.best_lam)))
    assert fits["gaussian"].slope != pytest.approx(fits["shot"].slope)


def test_compare_adaptive_takes_one_line_per_noise(trained):
    x, y, fit = half_noisy(trained)
    conditions = {("clean", 0): [(x[:8], y[:8])], ("gaussian", 3): [(x[8:], y[8:])]}
    grid = [0.1, 0.3, 0.6, 1.0]
    always_small, always_large = LambdaFit(0.0, 0.1, 1.0), LambdaFit(0.0, 1.0, 1.0)
    result = compare_adaptive(trained, conditions, {"clean": always_large, "gaussian": always_small}, grid, 0.1)
    assert result.lam_batch.tolist() == pytest.approx([1.0, 0.1]) and result.lam_sample.tolist() == pytest.approx([1.0, 0.1])


def test_filter_sweep_includes_the_bare_model_and_scores_the_filtered_images():
    from sdnet.denoise import median_filter
    from sdnet.evaluate import evaluate
    from sdnet.robustness import filter_sweep

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    x, y = torch.rand(12, 3, 8, 8), torch.randint(0, 2, (12,))
    table = filter_sweep(model, {("clean", 0): [(x, y)]}, {"median": [2]}, bf16=False)
    assert list(table["strength"]) == [0.0, 2.0] and set(table["filter"]) == {"median"}
    assert table["top1"].iloc[0] == pytest.approx(evaluate(model, [(x, y)], bf16=False)["top1"])
    assert table["top1"].iloc[1] == pytest.approx(evaluate(model, [(median_filter(x, 2), y)], bf16=False)["top1"])


def test_stem_reconstructions_are_pixels_and_fall_to_the_mean_colour_when_lambda_empties_the_code():
    from sdnet import CSCConv2d
    from sdnet.models import Normalize
    from sdnet.robustness import stem_reconstructions

    torch.manual_seed(0)
    model = nn.Sequential()
    model.normalize = Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    model.conv1 = CSCConv2d(3, 8, 3, padding=1, lam=0.1)
    model.pool = nn.AdaptiveAvgPool2d(1)
    model.eval()
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        model(x)  # the first forward normalises the atoms and estimates the step size; later ones reuse both
    views = stem_reconstructions(model, x, [0.1, 1e6])
    assert views.shape == (2, 3, 3, 8, 8) and views.min() >= 0 and views.max() <= 1
    torch.testing.assert_close(views[1], torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1).expand(3, 3, 8, 8))  # A 0, undone normalisation
    with torch.no_grad():
        z = model.conv1(model.normalize(x))
        expected = (model.conv1.reconstruction() * torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1) + torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)).clamp(0, 1)
    assert z.abs().sum() > 0
    torch.testing.assert_close(views[0], expected)


# ---------------------------------------------------------------------------------------------
# Per-image hits: what paired comparisons and bootstraps over images need
# ---------------------------------------------------------------------------------------------


def test_hits_round_trip_rows_of_any_length(tmp_path):
    from sdnet import hits

    rng = np.random.default_rng(0)
    rows = [rng.random(n) < 0.5 for n in (13, 16, 1, 0)]
    hits.save(tmp_path / "hits.npz", {"sweep": rows, "adaptive.sample": rows[:2]})
    back = hits.load(tmp_path / "hits.npz")
    assert set(back) == {"sweep", "adaptive.sample"}
    for a, b in zip(rows, back["sweep"]):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert len(back["adaptive.sample"]) == 2


def test_per_image_hits_are_what_the_accuracies_count(trained):
    from sdnet.robustness import filter_sweep

    x, y = two_colours()
    noisy = (x + 0.4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    conditions = {("clean", 0): [(x[:40], y[:40]), (x[40:], y[40:])], ("gaussian", 1): [(noisy[:40], y[:40]), (noisy[40:], y[40:])]}
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    table = sweep({"tiny": trained, "plain": plain}, conditions, [0.1, 1.0, 100.0], per_image=True)
    assert list(table.columns)[-1] == "correct"
    for _, row in table.iterrows():
        assert len(row["correct"]) == len(x) and 100 * row["correct"].mean() == pytest.approx(row["top1"])
        # the row's own images, in order: recomputed here image by image
        xs = torch.cat([b[0] for b in conditions[(row["noise"], row["severity"])]])
        model = trained if row["model"] == "tiny" else plain
        with torch.no_grad(), csc_lambda(trained, row["lam"]):
            expected = (model.eval()(xs).argmax(1) == y).numpy()
        assert np.array_equal(row["correct"], expected)
    lam = table[table["model"] == "tiny"].groupby("lam")["top1"].mean()
    assert lam.nunique() > 1  # lambda changes what is right, so the rows are not one array repeated
    filtered = filter_sweep(plain, conditions, {"blur": [1.0]}, per_image=True, bf16=False)
    assert all(100 * c.mean() == pytest.approx(t) for c, t in zip(filtered["correct"], filtered["top1"]))


def test_adaptive_hits_follow_the_images_not_the_groups(trained):
    from sdnet.adaptive import adaptive_accuracy

    x, y, fit = half_noisy(trained)
    mode = AdaptiveLambda(trained, fit, [0.1, 0.5, 1.0, 2.0], 0.1, per="sample")
    top1, _, correct = adaptive_accuracy(mode, [(x, y)], bf16=False)
    logits, _ = adaptive_predict(trained, x, fit, lambdas=[0.1, 0.5, 1.0, 2.0], train_lam=0.1)
    assert np.array_equal(correct, (logits.argmax(1) == y).numpy())
    assert 100 * correct.mean() == pytest.approx(top1)


def test_stem_steps_and_what_the_stem_makes_of_noise(trained):
    from sdnet.analysis import correlation
    from sdnet.robustness import stem_denoising, stem_steps

    stem = trained[1]
    with stem_steps(trained, 20):
        assert stem.n_steps == 20
    assert stem.n_steps == 2
    x, _ = two_colours()
    x = x[:6]
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    table = stem_denoising(trained, x, noisy, [0.1, 1e6], [2, 20])
    assert len(table) == 2 * 2 * 6 and stem.n_steps == 2 and stem.lam == 0.1
    empty = table[table["lam"] == 1e6]  # no code: nothing of any image is kept
    assert np.allclose(empty["to_clean"], 1.0) and np.allclose(empty["code_shift"], 0.0)
    # independently: the stem's input, code and reconstruction at lambda 0.1, 20 steps
    with torch.no_grad(), stem_steps(trained, 20):
        inputs = trained[0](x)
        z_clean = stem(inputs).flatten(1)
        z_noisy = stem(trained[0](noisy)).flatten(1)
        recon = stem.reconstruction()
    row = table[(table["lam"] == 0.1) & (table["steps"] == 20)].sort_values("image")
    expected = 1 - correlation(inputs, recon).clamp_min(0) ** 2
    np.testing.assert_allclose(row["to_clean"], expected.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(row["code_shift"], ((z_noisy - z_clean).norm(dim=1) / z_clean.norm(dim=1)).numpy(), rtol=1e-4)
    same = stem_denoising(trained, x, x, [0.1], [2])  # no noise: the code does not move
    assert np.allclose(same["code_shift"], 0) and np.allclose(same["to_clean"], same["to_noisy"])
