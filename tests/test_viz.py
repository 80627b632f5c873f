"""Atom images and that every figure renders (sdnet.viz)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from sdnet import CSCConv2d, viz
from sdnet.robustness import LambdaFit, best_lambda


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_atom_images_are_scaled_per_atom():
    weight = torch.randn(6, 3, 5, 5)
    weight[0] *= 100
    atoms = viz.atom_images(weight)
    assert atoms.shape == (6, 5, 5, 3)
    assert torch.allclose(atoms.amin(dim=(1, 2, 3)), torch.zeros(6)) and torch.allclose(atoms.amax(dim=(1, 2, 3)), torch.ones(6))


def test_plot_atoms_grid():
    fig = viz.plot_atoms(CSCConv2d(3, 20, 3), ncols=8, title="atoms")
    assert isinstance(fig, Figure) and len(fig.axes) == 24  # 3 rows of 8, the last 4 empty
    assert len(viz.plot_atoms(torch.randn(5, 1, 3, 3)).axes) == 5  # grey for one input channel


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
    best = best_lambda(table, train_lam=0.1)
    points = best[best.model == "sdnet"]
    attacks = pd.DataFrame([
        dict(model=m, norm=n, eps=e, attack=a, lam=lam, clean=90.0, white_box=10 + 20 * lam * (m == "sdnet") - k, transfer=15 + 30 * lam * (m == "sdnet") - k)
        for m in ("sdnet", "resnet") for n, e in (("Linf", 8 / 255), ("L2", 0.5)) for k, a in enumerate(("pgd", "apgd-dlr", "worst case"))
        for lam in ((0.1, 0.5, 1.0) if m == "sdnet" else (float("nan"),))
    ])
    labels = [f"{n} {s}" for n, s in zip(points.noise, points.severity)]
    images = torch.rand(3, 3, 8, 8)
    figures = {
        "accuracy_vs_lambda": viz.plot_accuracy_vs_lambda(table, "sdnet", 0.1, baseline=table[table.model == "resnet"]),
        "best_lambda_from_best": viz.plot_best_lambda_vs_severity(best, "sdnet"),
        "best_lambda_from_sweep": viz.plot_best_lambda_vs_severity(table[table.model == "sdnet"]),
        "fit": viz.plot_lambda_vs_error_fit(points.recon_error_train_lam, points.best_lam, LambdaFit(2.0, 0.1, 0.9), labels),
        "attacks": viz.plot_attacks_vs_lambda(attacks[attacks.model == "sdnet"], baseline=attacks[attacks.model == "resnet"]),
        "sparsity": viz.plot_sparsity({"conv1": 0.6, "layer1.0.conv1": 0.8}),
        "reconstructions": viz.plot_layer_reconstructions(images, [images, images], ["L0", "L1"]),
        "reconstructions_rescaled": viz.plot_layer_reconstructions(images, [0.01 * images], rescale=True),
        "sparsity_with_floor": viz.plot_sparsity({"conv1": 0.6, "layer1.0.conv1": 0.8}, {"conv1": 0.5, "layer1.0.conv1": 0.5}, 0.1),
        "curves": viz.plot_training_curves({"loss": {"a": pd.DataFrame({"mean": [2.0, 1.0], "low": [1.9, 0.9], "high": [2.1, 1.1]}, index=[1, 2])}}),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure), name
        fig.savefig(tmp_path / f"{name}.png")
    assert len(figures["accuracy_vs_lambda"].axes) == 2  # gaussian and shot; clean is drawn in both
    assert len(list(tmp_path.glob("*.png"))) == len(figures)
    with pytest.raises(ValueError, match="several models"):
        viz.plot_accuracy_vs_lambda(table)


def test_rescaled_reconstructions_take_their_range_inside_the_border():
    # A faint pattern inside a bright frame (what zero padding leaves on deep reconstructions):
    # rescaled over the whole image the pattern stays near black, inside the frame it spans [0, 1].
    pattern = torch.linspace(0, 0.01, 16).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
    framed = torch.ones(1, 3, 8, 8)
    framed[..., 2:6, 2:6] = pattern
    shown = {}
    for border in (0, 2):
        fig = viz.plot_layer_reconstructions(framed, [framed], rescale=True, border=border)
        shown[border] = torch.from_numpy(fig.axes[1].images[0].get_array().data)[2:6, 2:6]
    assert shown[0].max() < 0.02
    assert shown[2].min() == pytest.approx(0) and shown[2].max() == pytest.approx(1)


def test_inside_frame_drops_the_border_on_the_last_two_axes():
    images = torch.arange(2 * 3 * 6 * 5.0).reshape(2, 3, 6, 5)
    assert torch.equal(viz.inside_frame(images, 0), images)
    assert torch.equal(viz.inside_frame(images, 2), images[..., 2:4, 2:3])


def test_layer_reconstructions_wrap_onto_rows_of_per_row_panels():
    images = torch.rand(2, 3, 8, 8)
    fig = viz.plot_layer_reconstructions(images, [images] * 17, n_images=2, per_row=9)
    # 18 panels per image (input and 17 layers) on 2 rows of 9; 2 images: 4 rows
    assert len(fig.axes) == 4 * 9
    titled = [ax.get_title() for ax in fig.axes]
    assert titled[:9] == ["input"] + [f"layer {l}" for l in range(8)] and titled[9] == "layer 8"
    assert titled[18] == "input"  # the second image starts a new block
    assert all(not ax.images for ax in fig.axes if not ax.get_title())  # only panels with a picture are titled
