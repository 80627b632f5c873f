"""Atom images and that every figure renders (sdnet.chapters.figures)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from sdnet import CSCConv2d
from sdnet.chapters import figures
from sdnet.reconstruction import Curve
from sdnet.robustness import LambdaFit, best_lambda_table


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_atom_images_are_scaled_per_atom():
    weight = torch.randn(6, 3, 5, 5)
    weight[0] *= 100
    atoms = figures.atom_images(weight)
    assert atoms.shape == (6, 5, 5, 3)
    assert torch.allclose(atoms.amin(dim=(1, 2, 3)), torch.zeros(6)) and torch.allclose(atoms.amax(dim=(1, 2, 3)), torch.ones(6))


def test_plot_atoms_grid():
    fig = figures.plot_atoms(CSCConv2d(3, 20, 3), ncols=8, title="atoms")
    assert isinstance(fig, Figure) and len(fig.axes) == 24  # 3 rows of 8, the last 4 empty
    assert len(figures.plot_atoms(torch.randn(5, 1, 3, 3)).axes) == 6  # grey for one input channel; 2 rows of 3
    square = figures.plot_atoms(torch.randn(16, 3, 3, 3))  # by default a square grid, not a strip
    assert len(square.axes) == 16 and square.get_size_inches()[0] < 2 * square.get_size_inches()[1]


def sweep_table() -> pd.DataFrame:
    rows = []
    for model, gain in [("sdnet", 1.0), ("resnet", 0.0)]:
        for noise in ["clean", "gaussian", "shot"]:
            for severity in ([0] if noise == "clean" else [1, 3, 5]):
                for lam in [0.1, 0.3, 0.6, 1.0]:
                    rows.append(dict(
                        model=model, noise=noise, severity=severity, lam=lam,
                        top1=90 - 8 * severity + gain * (20 * severity * lam - 30 * lam**2),
                        recon_error=0.01 * severity + 0.1 * lam,
                        sparsity=0.5 + 0.4 * lam if gain else float("nan"),
                    ))
    return pd.DataFrame(rows)


def test_figures_render(tmp_path):
    table = sweep_table()
    best = best_lambda_table(table, train_lam=0.1)
    points = best[best.model == "sdnet"]
    curves = pd.DataFrame([dict(defence=d, knob=k, value=v, clean=90 - 30 * v, clean_sd=0.5, robust=10 + 20 * v, robust_sd=1.0)
                           for d, k in (("SDNet-18", "λ"), ("ResNet-18 + blur", "σ")) for v in (0.1, 0.2, 0.8, 0.9)])
    sweep = pd.DataFrame([dict(setting=f"λ {lam}", eps=e / 255, robust=50 / e) for lam in (0.1, 1.0) for e in (1, 2, 4, 8)])
    images = torch.rand(3, 3, 8, 8)
    stem = pd.DataFrame([dict(noise=n, severity=3, lam=lam, steps=k, to_clean=0.3 + lam / k, gain_over_input=-0.1, code_shift=0.2 * lam)
                         for n in ("gaussian", "shot") for lam in (0.1, 0.5, 1.0) for k in (2, 5, 20)])
    curve = Curve("stem", 2, (0.0, 0.1, 1.0), torch.tensor([[0.5, 0.5], [0.6, 0.7], [0.9, 0.9]]), torch.tensor([[0.1, 0.1], [0.2, 0.2], [0.5, 0.6]]),
                  torch.zeros(3, 2), torch.zeros(3, 2), 10.0)
    other = Curve("random", 2, (0.0, 0.1, 1.0), curve.zeros, curve.error + 0.1, torch.zeros(3, 2), torch.zeros(3, 2), 5.0)
    rendered = {
        "accuracy_vs_lambda": figures.plot_accuracy_vs_lambda(table, "sdnet", 0.1, baseline=table[table.model == "resnet"]),
        "best_lambda_from_best": figures.plot_best_lambda_vs_severity(best, "sdnet"),
        "best_lambda_from_sweep": figures.plot_best_lambda_vs_severity(table[table.model == "sdnet"]),
        "fit": figures.plot_lambda_vs_error_fit(points.recon_error_train_lam, points.best_lam, LambdaFit(2.0, 0.1, 0.9), list(points.noise), list(points.severity)),
        "mechanism": figures.plot_stem_mechanism(stem, 0.1),
        "robust_vs_clean": figures.plot_robust_vs_clean({("transfer", "Linf 8/255"): curves, ("white-box", "Linf 8/255"): curves}, levels=(80, 70)),
        "radius_sweep": figures.plot_radius_sweep(sweep),
        "sparsity": figures.plot_sparsity({"conv1": 0.6, "layer1.0.conv1": 0.8}),
        "reconstructions": figures.plot_layer_reconstructions(images, [images, images], ["L0", "L1"]),
        "reconstructions_rescaled": figures.plot_layer_reconstructions(images, [0.01 * images], rescale=True),
        "sparsity_with_floor": figures.plot_sparsity({"conv1": 0.6, "layer1.0.conv1": 0.8}, {"conv1": 0.5, "layer1.0.conv1": 0.5}, 0.1,
                                                 reference={"conv1": 0.4, "layer1.0.conv1": 0.7}),
        "error_vs_zeros": figures.plot_sparsity_curves({"stem": [curve], "random": [curve, other]}, {"stem": [curve]}, mark=0.6),
        "curves": figures.plot_training_curves({"loss": {"a": pd.DataFrame({"mean": [2.0, 1.0], "low": [1.9, 0.9], "high": [2.1, 1.1]}, index=[1, 2])}}),
    }
    for name, fig in rendered.items():
        assert isinstance(fig, Figure), name
        fig.savefig(tmp_path / f"{name}.png")
    assert len(rendered["accuracy_vs_lambda"].axes) == 2  # gaussian and shot; clean is drawn in both
    assert len(list(tmp_path.glob("*.png"))) == len(rendered)
    # a line joins neighbours at most 5 points of clean accuracy apart: 0.2 -> 0.8 (18 points) is not drawn
    assert [len(run) for run in figures._joined_runs(curves[curves.defence == "SDNet-18"], 5.0)] == [2, 2]
    with pytest.raises(ValueError, match="several models"):
        figures.plot_accuracy_vs_lambda(table)


def test_rescaled_reconstructions_take_their_range_inside_the_border():
    # A faint pattern inside a bright frame (what zero padding leaves on deep reconstructions),
    # with a colour cast: stretched inside the frame, the pattern spans the range in every channel
    # and the cast is gone; the title says how much contrast it kept.
    pattern = torch.linspace(0, 0.01, 16).reshape(1, 1, 4, 4).expand(1, 3, 4, 4) + torch.tensor([0.0, 0.3, 0.0]).view(1, 3, 1, 1)
    framed = torch.ones(1, 3, 8, 8)
    framed[..., 2:6, 2:6] = pattern
    image = torch.zeros(1, 3, 8, 8)
    image[..., 2:6, 2:6] = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    shown = {}
    for border in (0, 2):
        fig = figures.plot_layer_reconstructions(image, [framed], rescale=True, border=border)
        shown[border] = torch.from_numpy(fig.axes[1].images[0].get_array().data)[2:6, 2:6]
        title = fig.axes[1].get_title()
    spread = shown[0].amax(dim=(0, 1)) - shown[0].amin(dim=(0, 1))  # per channel
    assert (spread < 0.05).all()  # over the whole image the frame sets the spread
    assert shown[2].max() - shown[2].min() > 0.6
    assert torch.allclose(shown[2][..., 0], shown[2][..., 1], atol=1e-6)  # the cast of channel 1 is removed
    assert title == "layer 0 ×0.01"


def test_stretch_around_mean_centres_each_channel_and_scales_by_the_spread():
    torch.manual_seed(0)
    image = torch.randn(3, 6, 6) * 1e-4 + torch.tensor([0.2, 0.5, 0.9]).view(3, 1, 1)
    shown = figures.stretch_around_mean(image, spread=2.5)
    assert torch.allclose(shown.mean(dim=(1, 2)), torch.full((3,), 0.5), atol=0.05)
    centred = image - image.mean(dim=(1, 2), keepdim=True)
    assert torch.allclose(shown, (0.5 + centred / (5 * centred.std())).clamp(0, 1), atol=1e-6)


def test_one_per_class_spreads_the_classes():
    labels = [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    assert figures.one_per_class(labels, 3) == [0, 6, 12]  # classes 0, 2, 4
    assert figures.one_per_class([5, 5, 7], 4) == [0, 2]  # fewer classes than asked: each once


def test_layer_reconstructions_wrap_onto_rows_of_per_row_panels():
    images = torch.rand(2, 3, 8, 8)
    fig = figures.plot_layer_reconstructions(images, [images] * 17, n_images=2, per_row=9)
    # 18 panels per image (input and 17 layers) on 2 rows of 9; 2 images: 4 rows
    assert len(fig.axes) == 4 * 9
    titled = [ax.get_title() for ax in fig.axes]
    assert titled[:9] == ["input"] + [f"layer {l}" for l in range(8)] and titled[9] == "layer 8"
    assert titled[18] == "input"  # the second image starts a new block
    assert all(not ax.images for ax in fig.axes if not ax.get_title())  # only panels with a picture are titled
