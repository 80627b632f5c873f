"""The benchmark runs and reports what it promises (a smoke test: no timing is checked)."""

import json
import math

import pytest
import torch

from sdnet.tools import bench
from sdnet.csc import CSCConv2d
from sdnet.models import build
from sdnet.threads import one_thread


@pytest.fixture(scope="module")
def quick():
    # Tiny operations on a machine shared with other jobs: with one thread none of them waits for
    # a busy core, which keeps this test at a few seconds.
    rng = torch.get_rng_state()
    with one_thread():
        result = bench.run_benchmark("cpu", quick=True, precisions=["float32", "bf16"])
    assert torch.equal(torch.get_rng_state(), rng), "the benchmark must leave the caller's RNG alone"
    return result


@pytest.fixture(scope="module", params=["float32", "bf16"])
def run(quick, request):
    """One precision's measurements (both are measured in one run)."""
    return quick["precisions"][request.param]


def test_layers_cover_every_distinct_conv_shape_of_sdnet18_all(quick, run):
    width = quick["settings"]["width"]
    layers = run["layers"]
    # the stem, then per stage one stride-1 shape and (from stage 2 on) one stride-2 shape
    assert len(layers) == 8 and sum(r["count"] for r in layers) == 17
    stem = layers[0]
    size = quick["settings"]["image_size"]
    assert (stem["in_channels"], stem["out_channels"], stem["stride"], stem["input_size"]) == (3, width, 1, size)
    assert [r["stride"] for r in layers].count(2) == 3
    assert {r["out_channels"] for r in layers} == {width, 2 * width, 4 * width, 8 * width}
    for r in layers:
        assert (r["lam"], r["n_steps"], r["non_negative"]) == (0.1, 2, True)
        for key in ("conv_train_ms", "csc_train_ms", "train_ratio", "conv_forward_ms", "csc_forward_ms", "forward_ratio"):
            assert math.isfinite(r[key]) and r[key] > 0, key


def test_models_are_compared_with_resnet18(run):
    models = {r["model"]: r for r in run["models"]}
    assert list(models) == ["resnet18", "sdnet18", "sdnet18_all"]
    assert models["resnet18"]["train_relative"] == models["resnet18"]["eval_relative"] == 1.0
    assert models["resnet18"]["power_iterations"] is None
    for r in models.values():
        for key in ("train_ms", "train_images_per_s", "train_relative", "eval_ms", "eval_images_per_s", "eval_relative"):
            assert math.isfinite(r[key]) and r[key] > 0, key
    assert 2 <= models["sdnet18"]["power_iterations"] <= 50
    assert models["resnet18"]["train_flops_bound"] == models["resnet18"]["eval_flops_bound"] == 1.0
    # Three convs per CSC layer (n_steps=2) in every block: about a third of ResNet-18's throughput at best.
    assert 0.3 < models["sdnet18_all"]["eval_flops_bound"] < 0.4
    assert models["sdnet18_all"]["train_flops_bound"] < models["sdnet18_all"]["eval_flops_bound"] + 0.05


def test_training_steps_are_set_against_the_matmul_ceiling(quick):
    # float32 always; bf16 only where the CPU multiplies it natively (emulated, it bounds nothing)
    assert ("ceiling" in quick["precisions"]["bf16"]) == bench.cpu_has_native_bf16()
    run = quick["precisions"]["float32"]
    ceiling = run["ceiling"]["gflops_per_s"]
    assert math.isfinite(ceiling) and ceiling > 0
    for r in run["models"]:
        assert r["train_gflops_per_s"] == pytest.approx(r["train_images_per_s"] * r["train_gflops_per_image"])
        assert r["train_ceiling_share"] == pytest.approx(r["train_gflops_per_s"] / ceiling)
        assert r["train_images_per_s_at_ceiling"] == pytest.approx(ceiling / r["train_gflops_per_image"])
        # tiny networks on 16x16 images: far below what a matrix product does
        assert 0 < r["train_ceiling_share"] < 1


def test_the_ceiling_is_a_matrix_products_flops_over_its_time(monkeypatch):
    monkeypatch.setattr(bench, "time_interleaved", lambda cases, device, **kw: {name: [fn() is not None and 0.5] for name, fn in cases.items()})
    # 2 * 64^3 FLOPs in half a second
    assert bench.matmul_ceiling(torch.device("cpu"), bf16=False, size=64, repeats=1, min_sample_s=0.0) == pytest.approx(2 * 64**3 / 0.5 / 1e9)


def test_models_are_timed_after_settling_steps():
    # The first steps after initialisation move the dictionaries most: the warm-started power
    # iteration then needs many iterations per step, and the settling steps keep them out of the
    # timed (and counted) steps.
    counts = {}
    for settle_steps in (0, 30):
        with one_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            models = bench.bench_models(torch.device("cpu"), 8, 1, 0.0, 8, 16, settle_steps)
        counts[settle_steps] = {r["model"]: r["power_iterations"] for r in models}
    assert counts[30]["sdnet18_all"] < counts[0]["sdnet18_all"] / 2, counts


def _hand_count(model: torch.nn.Module, image_size: int) -> tuple[float, float]:
    """GFLOPs of one image's forward and of one power iteration, from the layer shapes: a conv of
    an ``[N, C, H, W]`` output costs ``2 * N*C*H*W * C_in * k * k``, a CSC layer ``2 * n_steps - 1``
    such convs (``A^T x``, then ``A z`` and ``A^T r`` per further step), a power iteration two at batch 1."""
    forward, power = [0.0], [0.0]

    def hook(layer, inputs, out):
        if isinstance(layer, torch.nn.Linear):
            forward[0] += 2 * layer.in_features * layer.out_features
            return
        conv = 2 * out.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, CSCConv2d):
            forward[0] += (2 * layer.n_steps - 1) * conv
            power[0] += 2 * conv
        else:
            forward[0] += conv

    kinds = (torch.nn.Conv2d, torch.nn.Linear, CSCConv2d)
    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model(torch.rand(1, 3, image_size, image_size))
    for h in hooks:
        h.remove()
    return forward[0] / 1e9, power[0] / 1e9


@pytest.mark.parametrize("name", ["resnet18", "sdnet18", "sdnet18_all"])
def test_flop_counts_match_a_count_by_hand(name):
    counted = bench.count_flops(name, width=8, image_size=16)
    forward, power = _hand_count(build(name, 10, width=8), 16)
    assert counted["eval"] == pytest.approx(forward, rel=1e-9)
    assert counted["power_iteration"] == pytest.approx(power, rel=1e-9)
    # backward: the gradients of weights and of inputs, each as costly as the forward (the image needs none)
    assert 2 * forward < counted["train"] <= 3 * forward


def test_settings_and_environment_are_recorded(quick):
    assert quick["device"]["type"] == "cpu" and quick["device"]["name"]
    assert quick["torch"] == torch.__version__
    s = quick["settings"]
    assert s["quick"] and s["precisions"] == ["float32", "bf16"] and s["channels_last"]  # NHWC on every device, as training
    assert list(quick["precisions"]) == ["float32", "bf16"]
    assert s["optimizer"]["name"] == "SGD"


def test_the_default_precisions_follow_the_hardware(monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_native_bf16", lambda: True)
    assert bench.default_precisions(torch.device("cpu")) == ["float32", "bf16"]
    monkeypatch.setattr(bench, "cpu_has_native_bf16", lambda: False)
    assert bench.default_precisions(torch.device("cpu")) == ["float32"]
    assert bench.default_precisions(torch.device("cuda")) == ["bf16"]


def test_cli_prints_the_tables_and_writes_json(quick, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bench, "run_benchmark", lambda *args, **kwargs: calls.append((args, kwargs)) or quick)
    out = tmp_path / "sub" / "bench.json"
    bench.main(["--device", "cpu", "--quick", "--json", str(out)])
    assert calls[0][0] == ("cpu", None, 5, True) and calls[0][1]["precisions"] is None and calls[0][1]["width"] == 64
    assert json.loads(out.read_text()) == json.loads(json.dumps(quick))
    printed = capsys.readouterr().out
    assert "CSCConv2d vs nn.Conv2d" in printed and "sdnet18_all" in printed and "by precision" in printed
    assert "The ceiling: a 128x128 matrix product" in printed


def test_bad_sizes_fail_before_any_work():
    with pytest.raises(ValueError, match="batch_size"):
        bench.run_benchmark("cpu", batch_size=0)
