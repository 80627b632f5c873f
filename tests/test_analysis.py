"""Tracing codes through the network: reconstruction through the dictionaries, BatchNorm
inversion, code sparsity (sdnet.analysis)."""

import pytest
import torch
from torch import nn

import sdnet
from sdnet import analysis
from sdnet.chapters import layer_verdicts
from sdnet.models import build


@pytest.fixture(scope="module")
def chain() -> nn.Module:
    """A narrow SDNet-18-All without shortcuts, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = build("sdnet18_all", 10, width=8, shortcut=False).double()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_first_layer_reconstruction_is_the_stems_own(chain):
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    recons = analysis.reconstruct_through_dictionaries(chain, x)
    assert len(recons) == len(sdnet.csc_layers(chain)) == 17
    assert all(r.shape == x.shape for r in recons)
    # the forward pass inside was the stem's last one: its own reconstruction, in pixel units
    stem = chain.conv1.reconstruction() * chain.normalize.std + chain.normalize.mean
    torch.testing.assert_close(recons[0], stem)
    # layer 1: its own reconstruction, through the stem's BatchNorm and dictionary, to pixels
    first = chain.layer1[0].conv1
    below = analysis.invert_batchnorm(chain.bn1, first.reconstruction())
    stem_input = nn.functional.conv_transpose2d(below, chain.conv1.weight, padding=1)
    torch.testing.assert_close(recons[1], stem_input * chain.normalize.std + chain.normalize.mean)
    assert len(analysis.reconstruct_through_dictionaries(chain, x, upto=2)) == 3


def test_strided_layers_get_back_to_the_image_size(chain):
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    recons = analysis.reconstruct_through_dictionaries(chain, x)
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
    torch.testing.assert_close(analysis.invert_batchnorm(bn, bn(x)), x)


def test_reconstruction_refuses_what_is_not_a_pure_chain():
    x = torch.rand(1, 3, 32, 32)
    with_shortcuts = build("sdnet18_all", 10, width=8).eval()
    with pytest.raises(ValueError, match="layer1.1.conv1.*shortcut=False"):
        analysis.reconstruct_through_dictionaries(with_shortcuts, x)
    # the stem and the first block's two layers do read the previous code through a BatchNorm alone
    # (an -All block has no ReLU inside); the second block reads a residual sum
    assert len(analysis.reconstruct_through_dictionaries(with_shortcuts, x, upto=2)) == 3
    imagenet_stem = build("sdnet18_all", 10, stem="imagenet", width=8, shortcut=False).eval()
    with pytest.raises(ValueError, match="pooling"):  # the stem's max-pool cannot be undone
        analysis.reconstruct_through_dictionaries(imagenet_stem, torch.rand(1, 3, 64, 64))
    assert len(analysis.reconstruct_through_dictionaries(build("sdnet18", 10, width=8).eval(), x)) == 1
    with pytest.raises(ValueError, match="no CSC layer"):
        analysis.reconstruct_through_dictionaries(build("resnet18", 10, width=8).eval(), x)


def test_code_sparsity_per_layer(chain):
    chain.train()
    sparsity = analysis.code_sparsity_per_layer(chain, torch.rand(2, 3, 32, 32, dtype=torch.float64))
    assert chain.training  # the mode is restored
    chain.eval()
    assert list(sparsity) == [n for n, _ in sdnet.csc_layers(chain)]
    assert all(0.0 <= v <= 1.0 for v in sparsity.values())


# -- how much of an image a reconstruction keeps ---------------------------------------------


def test_unexplained_variance_is_one_for_the_mean_colour_and_zero_for_the_image():
    torch.manual_seed(0)
    x = torch.rand(5, 3, 6, 6)
    mean_colour = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    assert torch.allclose(analysis.unexplained_variance(x, mean_colour), torch.ones(5))
    assert torch.allclose(analysis.unexplained_variance(x, x), torch.zeros(5))
    # by hand for one image: squared error over the squared deviations from its channel means
    r = 0.5 * x + 0.1
    by_hand = ((x[0] - r[0]) ** 2).sum() / ((x[0] - x[0].mean(dim=(1, 2), keepdim=True)) ** 2).sum()
    assert analysis.unexplained_variance(x, r)[0].item() == pytest.approx(by_hand.item(), rel=1e-5)
    # the same inputs normalised per channel (as chapter 1's): the same number where the channels share a std
    normalise = lambda t: (t - 0.45) / 0.2  # noqa: E731
    assert torch.allclose(analysis.unexplained_variance(normalise(x), normalise(r)), analysis.unexplained_variance(x, r), rtol=1e-4)


def test_correlation_ignores_contrast_and_offset_and_is_zero_for_flat_images():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 5, 5)
    assert torch.allclose(analysis.correlation(x, 3 * x - 1), torch.ones(4), atol=1e-6)
    assert torch.allclose(analysis.correlation(x, torch.full_like(x, 0.7)), torch.zeros(4))
    # Pearson correlation over every value, each image centred per channel, by numpy-free hand
    a = x[1] - x[1].mean(dim=(1, 2), keepdim=True)
    y = torch.rand(4, 3, 5, 5)
    b = y[1] - y[1].mean(dim=(1, 2), keepdim=True)
    assert analysis.correlation(x, y)[1].item() == pytest.approx(((a * b).sum() / (a.norm() * b.norm())).item(), rel=1e-5)


def test_correlation_with_others_averages_over_the_other_images_only():
    torch.manual_seed(1)
    x, r = torch.rand(4, 3, 5, 5), torch.rand(4, 3, 5, 5)
    others = analysis.correlation_with_others(x, r)
    by_hand = torch.stack([analysis.correlation(x[j : j + 1], r[0:1])[0] for j in (1, 2, 3)]).mean()
    assert others[0].item() == pytest.approx(by_hand.item(), rel=1e-5)
    # a reconstruction that is its own image scores 1 with it and less with the others
    assert (analysis.correlation(x, x) > analysis.correlation_with_others(x, x)).all()
    with pytest.raises(ValueError, match="two images"):
        analysis.correlation_with_others(x[:1], r[:1])


def test_mean_interval_is_mean_plus_minus_1_96_standard_errors():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    se = (sum((v - 2.5) ** 2 for v in [1, 2, 3, 4]) / 3) ** 0.5 / 2
    interval = analysis.mean_interval(values)
    assert (interval.mean, interval.low, interval.high) == pytest.approx((2.5, 2.5 - 1.96 * se, 2.5 + 1.96 * se))


def test_a_reconstruction_of_the_image_is_recognisable_a_shared_pattern_is_not():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    assert layer_verdicts.recognisable(x, 0.5 * x + 0.2)
    frame = torch.zeros(64, 3, 8, 8)
    frame[..., 0, :] = 1  # the same bright edge on every reconstruction, nothing of the image
    assert not layer_verdicts.recognisable(x, frame)
    table = layer_verdicts.layer_reconstruction_table(x, [x, 0.3 * x + 0.7 * torch.rand_like(x), frame])
    assert table["recognisable"].tolist() == [True, True, False]
    assert table["correlation"].iloc[0] == pytest.approx(1.0)
    verdict = layer_verdicts.recognisable_verdict(table)
    assert verdict.startswith("weak: ") and "up to layer 1 of 2 only" in verdict
    assert layer_verdicts.recognisable_verdict(table.iloc[:2]).startswith("holds")
    assert layer_verdicts.recognisable_verdict(table.iloc[2:].reset_index(drop=True)).startswith("does not hold")


def test_the_frame_decides_the_whole_image_measure_not_the_one_inside_it():
    # a deep reconstruction: the same bright frame on every image plus a faint copy of its image
    torch.manual_seed(0)
    x = torch.rand(64, 3, 12, 12)
    r = 1e-3 * x
    r[..., :2, :] += 1.0
    r[..., -2:, :] += 1.0
    table = layer_verdicts.layer_reconstruction_table(x, [r], border=2)
    assert table["correlation"].iloc[0] == pytest.approx(1.0, abs=1e-4) and table["recognisable"].iloc[0]
    assert table["whole image"].iloc[0] < 0.1  # over the whole image the frame is nearly all the spread
    assert table["contrast kept"].iloc[0] == pytest.approx(1e-3, rel=1e-3)
    assert not layer_verdicts.layer_reconstruction_table(x, [r])["recognisable"].iloc[0]
    assert "inside a 2-pixel frame" in layer_verdicts.recognisable_verdict(table, 2)


def test_contrast_kept_is_the_ratio_of_spreads_around_the_mean_colour():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 5, 5)
    assert torch.allclose(analysis.contrast_kept(x, 0.25 * x + 0.3), torch.full((3,), 0.25))
    assert torch.allclose(analysis.contrast_kept(x, torch.full_like(x, 0.5)), torch.zeros(3))


def test_inside_frame_drops_the_border_on_the_last_two_axes():
    images = torch.arange(2 * 3 * 6 * 5.0).reshape(2, 3, 6, 5)
    assert torch.equal(analysis.inside_frame(images, 0), images)
    assert torch.equal(analysis.inside_frame(images, 2), images[..., 2:4, 2:3])


# -- sparsity: the penalty against non-negativity, on each layer's own input ---------------------


def test_sparsity_on_own_input_changes_one_layer_at_a_time():
    # two CSC layers in a row, by hand: the second layer's floor is measured on the first layer's
    # code at the model's own lambda, not on the code it would get with every lambda at 0
    torch.manual_seed(0)
    # power iterations run to convergence, so that the step size is the same on every call
    exact = {"power_max_iter": 5000, "power_tol": 1e-12}
    first, second = sdnet.CSCConv2d(3, 6, 3, padding=1, lam=0.2, **exact).double(), sdnet.CSCConv2d(6, 5, 3, padding=1, lam=0.2, **exact).double()
    model = nn.Sequential(first, second).eval()
    x = torch.rand(4, 3, 10, 10, dtype=torch.float64)
    measured = analysis.sparsity_on_own_input(model, x, 0.2)
    with torch.no_grad():
        z1 = first(x)
        zeros = {}
        for lam in (0.0, 0.2):
            second.lam = lam
            zeros[lam] = (second(z1) == 0).double().mean().item()
        second.lam = 0.2
        first_step = nn.functional.conv2d(z1, second.weight, padding=1)
    s = measured["1"]
    assert (s["floor"], s["at_lam"], s["added"]) == pytest.approx((zeros[0.0], zeros[0.2], zeros[0.2] - zeros[0.0]))
    assert s["threshold"] == pytest.approx(0.2 * second.step_size.item())
    assert s["relative threshold"] == pytest.approx(0.2 / first_step.std().item(), rel=1e-4)
    with torch.no_grad(), sdnet.csc_lambda(model, 0.0):  # the old way: every layer at 0 feeds the second layer another input
        everywhere = analysis.code_sparsity_per_layer(model, x)["1"]
    assert everywhere != pytest.approx(s["floor"])
    assert [layer.lam for layer in (first, second)] == [0.2, 0.2]


def test_relu_zeros_after_convs_take_the_first_relu_after_each_3x3_conv():
    torch.manual_seed(0)
    resnet = build("resnet18", 10, width=4).eval()
    x = torch.rand(2, 3, 32, 32)
    zeros = analysis.relu_zeros_after_convs(resnet, x)
    assert list(zeros) == [n for n, m in resnet.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(zeros) == 17  # as many as the CSC layers of SDNet-18-All
    with torch.no_grad():  # the stem by hand: conv, BatchNorm, ReLU
        stem = torch.relu(resnet.bn1(resnet.conv1(resnet.normalize(x))))
        block = resnet.layer1[0]
        inner = torch.relu(block.bn1(block.conv1(resnet.maxpool(stem))))
    assert zeros["conv1"] == pytest.approx((stem == 0).float().mean().item())
    assert zeros["layer1.0.conv1"] == pytest.approx((inner == 0).float().mean().item())


@pytest.mark.parametrize("added, kind", [((0.06, 0.2), "holds"), ((0.01, 0.2), "weak"), ((0.0, 0.2), "does not hold")])
def test_sparsity_verdict_reads_what_the_penalty_adds(added, kind):
    layers = {f"l{i}": {"floor": 0.5, "at_lam": 0.5 + a, "added": a} for i, a in enumerate(added)}
    verdict = layer_verdicts.sparsity_verdict({"net a": layers, "net b": {"l0": {"floor": 0.4, "at_lam": 0.5, "added": 0.1}}})
    assert verdict.split(":")[0] == kind
    assert f"{100 * min(added):.1f} to 20.0 points" in verdict and "3 CSC layers of 2 networks" in verdict
