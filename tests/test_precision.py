"""The precision rule (sdnet.device.use_bf16): bf16 autocast where the hardware multiplies bf16
natively, float32 elsewhere; and bf16 training on a CPU that tracks float32 and stays exact."""

import csv
import warnings

import pytest
import torch

from sdnet import device as device_module
from sdnet.config import ConfigError
from sdnet.device import use_bf16
from sdnet.train import train
from test_train import tiny

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_means_bf16_on_cuda_and_on_cpus_with_native_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert use_bf16(CPU, "auto") and use_bf16(CUDA, "auto")
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert not use_bf16(CPU, "auto") and use_bf16(CUDA, "auto")
    assert not use_bf16(CPU, False) and not use_bf16(CUDA, False)


def test_forcing_bf16_on_a_cpu_without_it_works_and_says_it_is_slow(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="slower than float32"):
        assert use_bf16(CPU, True)
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert use_bf16(CPU, True)


@pytest.mark.parametrize("bad", ["yes", "true", None])
def test_other_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="bf16"):
        use_bf16(CPU, bad)


def test_the_cpu_probe_is_pytorchs():
    found = torch.cpu.get_capabilities()
    assert device_module.cpu_has_native_bf16() == bool(found.get("amx_bf16") or found.get("avx512_bf16"))


def _losses(out) -> list[float]:
    with open(out / "history.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


# Per-epoch mean training loss, bf16 against float32, on one fixed problem (synthetic set, 512
# images, width 8, 4 epochs of 8 steps): bf16 rounding acts like a small change of seed, which a
# few dozen SGD steps amplify more in the deeper CSC network. Measured here: at most 0.2%
# (ResNet-18), 0.5% (SDNet-18), 2.4% (SDNet-18-All).
TOLERANCE = {"resnet18": 0.01, "sdnet18": 0.015, "sdnet18_all": 0.05}


@pytest.mark.parametrize("model", list(TOLERANCE))
def test_bf16_training_on_a_cpu_tracks_float32(model, tmp_path):
    losses = {}
    for bf16 in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a CPU without native bf16 emulates it: slow, still correct
            train(tiny(model=model, epochs=4, width=8, limit=512, bf16=bf16), tmp_path / str(bf16))
        losses[bf16] = _losses(tmp_path / str(bf16))
    assert len(losses[True]) == 4
    for exact, rounded in zip(losses[False], losses[True]):
        assert abs(rounded - exact) <= TOLERANCE[model] * exact, (losses, model)
