"""CIFAR-10-C's additive noises: published constants, statistics, determinism, the release reader."""

import numpy as np
import pytest
import torch

from sdnet.data import DataError
from sdnet.data.corruptions import NOISES, SEVERITY_LEVELS, corrupt, corrupt_severity, load_cifar10c

GREY = 128  # mid-grey: no clipping for the noise levels tested
X = GREY / 255
FLAT = torch.full((100, 3, 32, 32), GREY, dtype=torch.uint8)  # 307,200 values


def values(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 255


def test_published_constants():
    assert NOISES == ("gaussian", "shot", "impulse", "speckle")
    assert SEVERITY_LEVELS == {
        "gaussian": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot": (500, 250, 100, 75, 50),
        "impulse": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle": (0.06, 0.10, 0.12, 0.16, 0.20),
    }


@pytest.mark.parametrize("sigma", [0.04, 0.1])
def test_gaussian_noise_has_standard_deviation_sigma(sigma):
    y = values(corrupt(FLAT, "gaussian", sigma, seed=1))
    # truncation to uint8 adds a uniform [0, 1/255) error: variance 1/12 grey level^2, mean -1/2
    assert y.var().item() == pytest.approx(sigma**2 + 1 / (12 * 255**2), rel=0.02)
    assert y.mean().item() == pytest.approx(X - 0.5 / 255, abs=3 * sigma / len(y.flatten()) ** 0.5 + 1e-4)


def test_shot_noise_variance_is_x_over_c():
    c = 100
    y = values(corrupt(FLAT, "shot", c, seed=2))
    assert y.var().item() == pytest.approx(X / c, rel=0.03)  # var(Poisson(x c) / c) = x / c
    assert y.mean().item() == pytest.approx(X - 0.5 / 255, abs=2e-3)


def test_speckle_noise_std_is_x_times_sigma():
    sigma = 0.2
    y = values(corrupt(FLAT, "speckle", sigma, seed=3))
    assert y.std().item() == pytest.approx(X * sigma, rel=0.02)
    dark = values(corrupt(torch.full((10, 3, 32, 32), 32, dtype=torch.uint8), "speckle", sigma, seed=3))
    assert dark.std().item() == pytest.approx(32 / 255 * sigma, rel=0.05)  # multiplicative: scales with x


def test_impulse_noise_hits_the_stated_fraction_with_salt_and_pepper():
    amount = 0.05
    y = corrupt(FLAT, "impulse", amount, seed=4)
    hit = y != GREY
    assert hit.double().mean().item() == pytest.approx(amount, abs=4 * (amount / hit.numel()) ** 0.5)
    assert set(y[hit].unique().tolist()) == {0, 255}
    assert (y[hit] == 255).double().mean().item() == pytest.approx(0.5, abs=0.02)
    per_channel = hit.double().mean((0, 2, 3))  # channels are hit independently, equally often
    assert torch.allclose(per_channel, torch.full((3,), amount, dtype=torch.float64), atol=0.003)
    assert not (hit[:, 0] == hit[:, 1]).all()


def test_zero_noise_and_clipping():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(corrupt(images, "gaussian", 0.0), images)  # exact round trip through float64
    assert torch.equal(corrupt(images, "impulse", 0.0), images)
    white = torch.full((4, 3, 8, 8), 255, dtype=torch.uint8)
    assert corrupt(white, "gaussian", 0.5).max() == 255 and corrupt(white * 0, "gaussian", 0.5).min() == 0


@pytest.mark.parametrize("noise", NOISES)
def test_noise_is_deterministic_and_grows_with_severity(noise):
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a, b = corrupt_severity(images, noise, 3, seed=7), corrupt_severity(images, noise, 3, seed=7)
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)
    assert not torch.equal(a, corrupt_severity(images, noise, 3, seed=8))
    errors = [(corrupt_severity(images, noise, s, seed=7).double() - images.double()).pow(2).mean().item() for s in (1, 3, 5)]
    assert 0 < errors[0] < errors[1] < errors[2]


def test_the_global_rng_is_never_used():
    state = torch.random.get_rng_state()
    for noise in NOISES:
        corrupt(FLAT[:2], noise, SEVERITY_LEVELS[noise][0], seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown noise 'blur'"):
        corrupt(FLAT, "blur", 0.1)
    with pytest.raises(ValueError, match="severity must be one of 1..5"):
        corrupt_severity(FLAT, "gaussian", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(FLAT.float(), "gaussian", 0.1)
    with pytest.raises(ValueError, match="impulse noise level must be in"):
        corrupt(FLAT, "impulse", 1.5)


# --- the released files -------------------------------------------------------------------------


def test_released_files_are_read_by_severity(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (5 * 4, 32, 32, 3), dtype=np.uint8)  # 4 images per severity
    labels = np.tile(np.arange(4), 5)
    np.save(folder / "gaussian_noise.npy", images)
    np.save(folder / "labels.npy", labels)
    parts = load_cifar10c(tmp_path, "gaussian", severities=(2, 5))
    assert [s for s, _ in parts] == [2, 5]
    severity, data = parts[0]
    assert data.images.shape == (4, 3, 32, 32) and data.labels.tolist() == [0, 1, 2, 3]
    assert np.array_equal(data.images[1].permute(1, 2, 0).numpy(), images[5])
    assert data.classes[0] == "airplane" and "severity 2" in data.name


def test_missing_or_malformed_release_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10-C/shot_noise.npy is missing.*zenodo.*corrupt_severity"):
        load_cifar10c(tmp_path, "shot")
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "shot_noise.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(DataError, match="5 stacked severities"):
        load_cifar10c(tmp_path, "shot")
    with pytest.raises(ValueError, match="severities must be in 1..5"):
        load_cifar10c(tmp_path, "shot", severities=(0,))
