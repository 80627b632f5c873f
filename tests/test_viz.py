"""Atoms, reconstruction through the dictionaries, code sparsity, and that every figure renders."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import sdnet
from sdnet import CSCConv2d, viz
from sdnet.models import build
from sdnet.robustness import LambdaFit, best_lambda


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def chain() -> nn.Module:
    """A narrow SDNet-18-All without shortcuts, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = build("sdnet18_all", 10, width=4, shortcut=False).double()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


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


def test_first_layer_reconstruction_is_the_stems_own(chain):
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    recons = viz.reconstruct_through_dictionaries(chain, x)
    assert len(recons) == len(sdnet.csc_layers(chain)) == 17
    assert all(r.shape == x.shape for r in recons)
    # the forward pass inside was the stem's last one: its own reconstruction, in pixel units
    stem = chain.conv1.reconstruction() * chain.normalize.std + chain.normalize.mean
    torch.testing.assert_close(recons[0], stem)
    # layer 1: its own reconstruction, through the stem's BatchNorm and dictionary, to pixels
    first = chain.layer1[0].conv1
    below = viz.invert_batchnorm(chain.bn1, first.reconstruction())
    stem_input = nn.functional.conv_transpose2d(below, chain.conv1.weight, padding=1)
    torch.testing.assert_close(recons[1], stem_input * chain.normalize.std + chain.normalize.mean)
    assert len(viz.reconstruct_through_dictionaries(chain, x, upto=2)) == 3


def test_strided_layers_get_back_to_the_image_size(chain):
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    recons = viz.reconstruct_through_dictionaries(chain, x)
    strided = [n for n, m in sdnet.csc_layers(chain) if m.stride == (2, 2)]
    assert strided == ["layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"]
    assert recons[-1].shape == x.shape and torch.isfinite(recons[-1]).all()


def test_invert_batchnorm_undoes_an_eval_batchnorm():
    bn = nn.BatchNorm2d(3).eval()
    bn.weight.data = torch.tensor([0.5, 2.0, -1.0])
    bn.bias.data = torch.tensor([0.1, -0.2, 0.3])
    bn.running_mean = torch.tensor([1.0, 0.0, -1.0])
    bn.running_var = torch.tensor([4.0, 0.25, 1.0])
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(viz.invert_batchnorm(bn, bn(x)), x)


def test_reconstruction_refuses_what_is_not_a_pure_chain():
    x = torch.rand(1, 3, 32, 32)
    with_shortcuts = build("sdnet18_all", 10, width=4).eval()
    with pytest.raises(ValueError, match="layer1.0.conv2.*shortcut=False"):
        viz.reconstruct_through_dictionaries(with_shortcuts, x)
    # the stem and the first block's first layer do read the previous code through a BatchNorm alone
    assert len(viz.reconstruct_through_dictionaries(with_shortcuts, x, upto=1)) == 2
    imagenet_stem = build("sdnet18_all", 10, stem="imagenet", width=4, shortcut=False).eval()
    with pytest.raises(ValueError, match="pooling"):  # the stem's max-pool cannot be undone
        viz.reconstruct_through_dictionaries(imagenet_stem, torch.rand(1, 3, 64, 64))
    assert len(viz.reconstruct_through_dictionaries(build("sdnet18", 10, width=4).eval(), x)) == 1
    with pytest.raises(ValueError, match="no CSC layer"):
        viz.reconstruct_through_dictionaries(build("resnet18", 10, width=4).eval(), x)


def test_code_sparsity_per_layer(chain):
    chain.train()
    sparsity = viz.code_sparsity_per_layer(chain, torch.rand(2, 3, 32, 32, dtype=torch.float64))
    assert chain.training  # the mode is restored
    chain.eval()
    assert list(sparsity) == [n for n, _ in sdnet.csc_layers(chain)]
    assert all(0.0 <= v <= 1.0 for v in sparsity.values())


def sweep_table() -> pd.DataFrame:
    rows = []
    for model, gain in [("sdnet", 1.0), ("resnet", 0.0)]:
        for noise in ["clean", "gaussian", "shot"]:
            for severity in ([0] if noise == "clean" else [1, 3, 5]):
                for lam in [0.1, 0.3, 0.6, 1.0]:
                    rows.append(dict(
                        model=model, noise=noise, severity=severity, lam=lam,
                        accuracy=90 - 8 * severity + gain * (20 * severity * lam - 30 * lam**2),
                        recon_error=0.01 * severity + 0.1 * lam,
                        sparsity=0.5 + 0.4 * lam if gain else float("nan"),
                    ))
    return pd.DataFrame(rows)


def test_figures_render(tmp_path):
    table = sweep_table()
    best = best_lambda(table, train_lam=0.1)
    points = best[best.model == "sdnet"]
    pgd = pd.DataFrame([
        dict(model=m, norm=n, lam=lam, clean=90.0, white_box=10 + 20 * lam * (m == "sdnet"), transfer=15 + 30 * lam * (m == "sdnet"))
        for m in ("sdnet", "resnet") for n in ("Linf", "L2") for lam in (0.1, 0.5, 1.0)
    ])
    labels = [f"{n} {s}" for n, s in zip(points.noise, points.severity)]
    images = torch.rand(3, 3, 8, 8)
    figures = {
        "accuracy_vs_lambda": viz.plot_accuracy_vs_lambda(table, "sdnet", 0.1, baseline=table[table.model == "resnet"]),
        "best_lambda_from_best": viz.plot_best_lambda_vs_severity(best, "sdnet"),
        "best_lambda_from_sweep": viz.plot_best_lambda_vs_severity(table[table.model == "sdnet"]),
        "fit": viz.plot_lambda_vs_error_fit(points.recon_error_train_lam, points.best_lam, LambdaFit(2.0, 0.1, 0.9), labels),
        "pgd": viz.plot_pgd_vs_lambda(pgd),
        "sparsity": viz.plot_sparsity({"conv1": 0.6, "layer1.0.conv1": 0.8}),
        "reconstructions": viz.plot_layer_reconstructions(images, [images, images], ["L0", "L1"]),
        "reconstructions_rescaled": viz.plot_layer_reconstructions(images, [0.01 * images], rescale=True),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure), name
        fig.savefig(tmp_path / f"{name}.png")
    assert len(figures["accuracy_vs_lambda"].axes) == 2  # gaussian and shot; clean is drawn in both
    assert len(list(tmp_path.glob("*.png"))) == len(figures)
    with pytest.raises(ValueError, match="several models"):
        viz.plot_accuracy_vs_lambda(table)
