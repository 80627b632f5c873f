"""The test-time filters of sdnet.denoise against direct, loop-by-loop computations in numpy."""

import numpy as np
import pytest
import torch
from torch import nn

from sdnet.denoise import Filtered, apply_filter, at_strength, gaussian_blur, gaussian_kernel, median_filter


def direct_blur(x: np.ndarray, sigma: float, taps: int = 5) -> np.ndarray:
    """The 2-D Gaussian (outer product of the 1-D one) applied pixel by pixel on a reflect-padded image."""
    offsets = np.arange(taps) - taps // 2
    g = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    half = taps // 2
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            padded = np.pad(x[n, c], half, mode="reflect")
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    out[n, c, i, j] = (padded[i : i + taps, j : j + taps] * kernel).sum()
    return out


def direct_median(x: np.ndarray) -> np.ndarray:
    """One 3x3 median per pixel on a reflect-padded image."""
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            padded = np.pad(x[n, c], 1, mode="reflect")
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    out[n, c, i, j] = np.median(padded[i : i + 3, j : j + 3])
    return out


@pytest.fixture
def images():
    return torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5])
def test_the_blur_is_the_2d_gaussian_with_reflect_padding(images, sigma):
    out = gaussian_blur(images, sigma)
    assert out.shape == images.shape
    np.testing.assert_allclose(out.numpy(), direct_blur(images.numpy(), sigma), rtol=0, atol=1e-12)


def test_the_blur_kernel_is_normalised_and_symmetric():
    k = gaussian_kernel(1.0, 5, torch.float64)
    assert k.sum().item() == pytest.approx(1.0) and torch.equal(k, k.flip(0)) and k.argmax().item() == 2
    with pytest.raises(ValueError):
        gaussian_kernel(1.0, 4)
    with pytest.raises(ValueError):
        gaussian_kernel(0.0)


def test_the_median_is_the_3x3_median_with_reflect_padding(images):
    once = median_filter(images, 1)
    np.testing.assert_array_equal(once.numpy(), direct_median(images.numpy()))
    np.testing.assert_array_equal(median_filter(images, 2).numpy(), direct_median(direct_median(images.numpy())))


def test_strength_zero_is_the_identity_and_a_constant_image_is_kept(images):
    assert apply_filter(images, "blur", 0.0) is images and apply_filter(images, "median", 0) is images
    flat = torch.full((1, 3, 8, 8), 0.3, dtype=torch.float64)
    for kind, strength in (("blur", 1.5), ("median", 2)):
        torch.testing.assert_close(apply_filter(flat, kind, strength), flat)
    with pytest.raises(ValueError):
        apply_filter(images, "median", 1.5)
    with pytest.raises(ValueError):
        apply_filter(images, "bilateral", 1.0)


def test_the_median_removes_an_isolated_impulse_and_the_blur_spreads_it():
    x = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    x[0, 0, 3, 3] = 1.0
    assert median_filter(x, 1).abs().max().item() == 0.0
    blurred = gaussian_blur(x, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0) and blurred[0, 0, 3, 3].item() < 0.2


def test_both_filters_are_differentiable(images):
    """The blur's gradient is exact (float64 gradcheck); the median hands each output's gradient
    to the one input pixel it selected, so the input gradient of a sum of outputs is a count of
    selections, adding up to the number of outputs."""
    small = images[:1, :1, :6, :5].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: gaussian_blur(t, 0.8), (small,))
    x = images.clone().requires_grad_(True)
    median_filter(x, 1).sum().backward()
    assert x.grad.sum().item() == pytest.approx(x.numel()) and torch.equal(x.grad, x.grad.round())


def test_filtered_puts_the_filter_in_front_of_the_model_and_at_strength_restores_it(images):
    inner = nn.Flatten()
    model = Filtered(inner, "blur", 0.0)
    torch.testing.assert_close(model(images), images.flatten(1))
    with at_strength(model, 1.0):
        assert model.strength == 1.0
        torch.testing.assert_close(model(images), gaussian_blur(images, 1.0).flatten(1))
    assert model.strength == 0.0
    with at_strength(model, None):
        assert model.strength == 0.0
    with pytest.raises(ValueError):
        Filtered(inner, "wiener")


def test_a_filtered_model_is_attacked_like_a_lambda_white_box_through_the_filter_and_transfer_from_the_bare_model():
    """attack_vs_setting on a Filtered model: at strength 0 it is the bare model (white-box equals
    transfer, and both equal attack_vs_lambda's numbers on the bare model); at strength > 0 the
    transfer examples are the bare model's, evaluated behind the filter."""
    from sdnet.attacks import AttackSpec, attack_vs_lambda, attack_vs_setting, adversarial_examples
    from toy_problem import two_colours

    torch.manual_seed(0)
    bare = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    x, y = two_colours(16, seed=1)
    spec = AttackSpec("pgd", "Linf", 8 / 255, steps=3)
    model = Filtered(bare, "blur")
    rows = attack_vs_setting(model, [(x, y)], [0.0, 1.0], [spec], setting=lambda s: at_strength(model, s), craft_at=0.0, num_classes=2)
    at0, at1 = rows
    plain = attack_vs_lambda(bare, [(x, y)], [0.1], [spec], train_lam=0.1, num_classes=2)[0]
    assert at0["white_box"] == at0["transfer"] == plain["white_box"] and at0["clean"] == plain["clean"]
    crafted = adversarial_examples(bare, x, y, spec.build(bare, 2), seed=0)
    with torch.no_grad():
        expected = 100 * (bare(gaussian_blur(crafted, 1.0)).argmax(1) == y).float().mean().item()
        clean = 100 * (bare(gaussian_blur(x, 1.0)).argmax(1) == y).float().mean().item()
    assert at1["transfer"] == pytest.approx(expected) and at1["clean"] == pytest.approx(clean)
