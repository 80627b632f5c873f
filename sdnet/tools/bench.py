"""Speed: the CSC layer against the convolution it replaces, SDNet against ResNet-18.

    python -m sdnet.tools.bench                                # CPU: batch 32; float32, and bf16 where native
    python -m sdnet.tools.bench --width 16 --batch-size 128    # the CPU-sized networks of the cpu profile
    python -m sdnet.tools.bench --device cuda --json reports/bench.json   # GPU: batch 128, bf16
    python -m sdnet.tools.bench --quick                        # a few seconds, tiny sizes (smoke test)

One run measures four things, the first two as ratios taken within the run:

1. layers: ``CSCConv2d`` against ``nn.Conv2d`` of the same shape, forward+backward and forward only
   (``no_grad``, as in evaluation), for every distinct conv shape of SDNet-18-All with the CIFAR stem
   (the stem 3->64 at 32x32 is SDNet-18's only CSC layer; the others are the 3x3 convs of the
   blocks, stride-2 ones included). The CSC time includes everything a call does: the atom
   normalisation, the warm-started power iteration for the step size, and the unrolled solver.
   The dictionary does not change between these calls, so the power iteration starts converged
   and stops after its minimum of two iterations.
2. models: SDNet-18 and SDNet-18-All against ResNet-18 (CIFAR stem, 10 classes): a full training step
   (forward, cross-entropy, backward, SGD step with the paper's CIFAR recipe) and an evaluation step
   (``no_grad`` forward), in images/s. Each model first takes ``--settle-steps`` (50) untimed
   training steps: in the first ten or so steps after initialisation an SGD step moves the
   dictionaries most and the warm-started power iteration needs 30-50 iterations per layer, after
   that about 3 (SDNet-18-All, width 16, on CIFAR-10 JPEGs with the paper's recipe: 35 on average
   over steps 0-9, 7 over steps 10-49, 3.2 over steps 50-199), so timing from initialisation would
   measure a few steps of a run's tens of thousands. The mean count of the timed steps is reported
   with the result.
3. arithmetic: the FLOPs (two per multiply-add) of the convolutions and linear layers of each
   step, counted by ``torch.utils.flop_counter`` (device independent), and the throughput ratio they allow:
   ResNet-18's FLOPs per image over the model's. A CSC layer with ``n_steps=2`` costs three convs
   forward (``A^T x``, then ``A z`` and ``A^T r``) where a conv costs one, so SDNet-18-All cannot
   reach more than about a third of ResNet-18's throughput; the measured ratio beside this bound
   says how much of the gap is the implementation. The training bound includes the step-size
   refresh at the measured mean number of power iterations (two batch-1 convs per CSC layer
   each, a cost spread over the batch).
4. the ceiling: the GFLOP/s of a large square matrix product in the same precision, the most
   the device does with dense arithmetic, and the share of it each model's training step reaches
   (its images/s times its FLOPs per image). No implementation of a network trains faster than
   the ceiling over its FLOPs per image, so this bounds what any recipe can buy on the machine:
   a number of epochs in a given time. Not measured for bf16 on a CPU that only emulates it
   (there a bf16 matrix product is slower than the float32 convolutions it would bound).

How it times. Every call first runs untimed (warm-up: the first CSC call does a cold power
iteration, cuDNN picks its algorithms, the allocator fills its cache). Then the cases being compared
are timed in interleaved rounds (conv, CSC, conv, CSC, ...) so that a slow spell of a shared machine
hits all of them alike; a ratio is the median over rounds of the ratio within each round, and a time
is the median over rounds. On CUDA a sample is a run of back-to-back calls between two CUDA events
(long enough to dwarf the event resolution; host synchronisations inside a call, such as the power
iteration's convergence test, show up as idle GPU time, as they would in training); on CPU it is
``time.perf_counter`` around the calls. Tensors are channels_last on every device, as in training.

Precision. Training runs in bf16 autocast where the hardware multiplies bf16 natively
(:func:`sdnet.evaluate.use_bf16`: CUDA, CPUs with AMX or AVX512-BF16) and in float32 elsewhere. On
such a CPU both are measured in one run (``--precision both``, the default there), so the float32
and bf16 ratios can be read side by side; on CUDA bf16, elsewhere float32.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from sdnet.config import RECIPES, command_line
from sdnet.csc import CSCConv2d, csc_layers
from sdnet.device import autocast_for, cpu_has_native_bf16, resolve_device
from sdnet.models import build

MODELS = ("resnet18", "sdnet18", "sdnet18_all")
BASELINE = "resnet18"
NUM_CLASSES = 10
IMAGE_SIZE = 32  # CIFAR
# --quick: a network 8 times narrower on 16x16 images, one timed round; it checks that the
# benchmark runs, its numbers mean nothing. Not narrower: oneDNN's AVX2 kernel for the weight
# gradient of a strided 1x1 convolution (the shortcuts) corrupts memory when it has fewer than 8
# input channels (uxlfoundation/oneDNN#6035), which width 4 gives.
QUICK = dict(width=8, image_size=16, batch_size=2, repeats=1, settle_steps=1)
# Untimed training steps before the models' training steps are timed (module docstring, item 2).
SETTLE_STEPS = 50
# The side of the square matrices whose product measures the ceiling (item 4): large enough for
# the BLAS to run at full speed (2 CPU cores: 4096 reaches 10% more than 2048), a second per call there.
CEILING_SIZE = {"cpu": 4096, "cuda": 8192, "quick": 128}
CIFAR_TRAIN_IMAGES = 50_000  # an epoch, for the ceiling's table
SGD = {k: RECIPES["cifar"][k] for k in ("lr", "momentum", "nesterov", "weight_decay")}  # the paper's CIFAR recipe


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def _seconds_per_call(fn: Callable[[], object], calls: int, cuda: bool) -> float:
    """Mean seconds per call over ``calls`` back-to-back calls of ``fn``."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / calls
    tic = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - tic) / calls


def time_interleaved(
    cases: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    repeats: int,
    warmup: int = 2,
    min_sample_s: float = 0.0,
) -> dict[str, list[float]]:
    """``repeats`` samples (seconds per call) of each case, the cases taking turns.

    A sample repeats its call until it lasts ``min_sample_s`` (sized once, after the warm-up), so
    that short GPU calls are timed over many launches rather than one.
    """
    cuda = device.type == "cuda"
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    if cuda:
        torch.cuda.synchronize()
    calls = {name: max(1, math.ceil(min_sample_s / max(_seconds_per_call(fn, 1, cuda), 1e-9))) for name, fn in cases.items()}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(_seconds_per_call(fn, calls[name], cuda))
    return samples


def _median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of the within-round ratio (robust to slow spells that span a round)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def _ms(samples: list[float]) -> float:
    return 1e3 * statistics.median(samples)


# ---------------------------------------------------------------------------------------------
# 1. Layers
# ---------------------------------------------------------------------------------------------


def distinct_csc_shapes(model: nn.Module, image_size: int) -> list[dict[str, Any]]:
    """The distinct (conv geometry, input size) pairs of the CSC layers of ``model``, in forward order.

    Read off the model with one forward of a single image, so the list follows the architecture
    instead of restating it; ``count`` says how many layers of the model have the shape.
    """
    shapes: dict[tuple, dict[str, Any]] = {}

    def record(layer: CSCConv2d, args: tuple[Tensor, ...]) -> None:
        size = tuple(args[0].shape[-2:])
        key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding, size)
        if key in shapes:
            shapes[key]["count"] += 1
        else:
            shapes[key] = dict(
                in_channels=layer.in_channels, out_channels=layer.out_channels, kernel_size=layer.kernel_size[0],
                stride=layer.stride[0], padding=layer.padding[0], input_size=size[0], count=1,
                lam=layer.lam, n_steps=layer.n_steps, non_negative=layer.non_negative,
            )

    hooks = [layer.register_forward_pre_hook(record) for _, layer in csc_layers(model)]
    try:
        with torch.no_grad():
            model(torch.rand(1, 3, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
    return list(shapes.values())


def _shape_name(s: dict[str, Any]) -> str:
    k, size = s["kernel_size"], s["input_size"]
    return f"{s['in_channels']}->{s['out_channels']} k{k} s{s['stride']} @{size}x{size}"


def bench_layer(
    shape: dict[str, Any], device: torch.device, batch_size: int, repeats: int, min_sample_s: float, first_layer: bool,
    bf16: bool = False,
) -> dict[str, Any]:
    """CSC against conv at one shape: ms per call (forward+backward, forward) and CSC/conv ratios."""
    fmt = torch.channels_last  # as training runs, on every device
    geometry = (shape["in_channels"], shape["out_channels"], shape["kernel_size"], shape["stride"], shape["padding"])
    conv = nn.Conv2d(*geometry, bias=False)
    csc = CSCConv2d(*geometry, lam=shape["lam"], n_steps=shape["n_steps"], non_negative=shape["non_negative"])
    with torch.no_grad():
        conv.weight.copy_(csc.weight)
    conv.to(device, memory_format=fmt)
    csc.to(device, memory_format=fmt)
    size = shape["input_size"]
    x = torch.randn(batch_size, shape["in_channels"], size, size, device=device).contiguous(memory_format=fmt)
    # Inside a network a layer also returns the gradient of its input, except the first layer,
    # whose input (the image) needs none.
    x.requires_grad_(not first_layer)

    def steps(layer: nn.Module) -> tuple[Callable[[], None], Callable[[], None]]:
        with autocast_for(device, bf16), torch.no_grad():
            grad_out = torch.randn_like(layer(x))  # the dtype and layout of the layer's output

        def train() -> None:
            layer.weight.grad = x.grad = None
            with autocast_for(device, bf16):
                out = layer(x)
            out.backward(grad_out)

        def forward() -> None:
            with autocast_for(device, bf16), torch.no_grad():
                layer(x)

        return train, forward

    (conv_train, conv_fwd), (csc_train, csc_fwd) = steps(conv), steps(csc)
    train = time_interleaved(dict(conv=conv_train, csc=csc_train), device, repeats=repeats, min_sample_s=min_sample_s)
    fwd = time_interleaved(dict(conv=conv_fwd, csc=csc_fwd), device, repeats=repeats, min_sample_s=min_sample_s)
    return dict(
        shape=_shape_name(shape), **shape,
        conv_train_ms=_ms(train["conv"]), csc_train_ms=_ms(train["csc"]), train_ratio=_median_ratio(train["csc"], train["conv"]),
        conv_forward_ms=_ms(fwd["conv"]), csc_forward_ms=_ms(fwd["csc"]), forward_ratio=_median_ratio(fwd["csc"], fwd["conv"]),
    )


# ---------------------------------------------------------------------------------------------
# The ceiling
# ---------------------------------------------------------------------------------------------


def matmul_ceiling(device: torch.device, bf16: bool, size: int, repeats: int, min_sample_s: float) -> float:
    """GFLOP/s of the product of two ``size`` x ``size`` matrices, in bf16 or float32 (median of
    ``repeats``): the device's dense arithmetic at its best, which a network's step cannot beat."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    samples = time_interleaved(dict(matmul=lambda: a @ b), device, repeats=repeats, min_sample_s=min_sample_s)
    return 2 * size**3 / statistics.median(samples["matmul"]) / 1e9


# ---------------------------------------------------------------------------------------------
# 2. Models
# ---------------------------------------------------------------------------------------------


def bench_models(
    device: torch.device, batch_size: int, repeats: int, min_sample_s: float, width: int, image_size: int,
    settle_steps: int, bf16: bool = False, ceiling_gflops: float | None = None,
) -> list[dict[str, Any]]:
    """Training and evaluation steps of each of ``MODELS``: images/s, and relative to ResNet-18.

    Each model first takes ``settle_steps`` untimed training steps on fresh random batches, so the
    timed steps are those that make up a training run rather than its first few (see the module
    docstring). With ``ceiling_gflops`` (:func:`matmul_ceiling`), each result also says what share
    of it the training step reaches and how many images/s the ceiling would allow."""
    fmt = torch.channels_last

    def batch() -> tuple[Tensor, Tensor]:
        x = torch.rand(batch_size, 3, image_size, image_size, device=device).contiguous(memory_format=fmt)
        return x, torch.randint(0, NUM_CLASSES, (batch_size,), device=device)

    timed_batch = batch()
    train_cases, eval_cases = {}, {}
    power_iterations: dict[str, list[int]] = {name: [] for name in MODELS}
    for name in MODELS:
        model = build(name, NUM_CLASSES, width=width).to(device, memory_format=fmt)
        optimizer = torch.optim.SGD(model.parameters(), **SGD)
        csc = [layer for _, layer in csc_layers(model)]

        def train_step(model=model, optimizer=optimizer, csc=csc, data=timed_batch, iterations=power_iterations[name]) -> None:
            x, y = data
            model.train()
            with autocast_for(device, bf16):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iterations.extend(layer.power_iterations for layer in csc)

        for _ in range(settle_steps):
            train_step(data=batch(), iterations=[])

        def eval_step(model=model, x=timed_batch[0]) -> None:
            model.eval()
            with autocast_for(device, bf16), torch.no_grad():
                model(x)

        train_cases[name], eval_cases[name] = train_step, eval_step

    train = time_interleaved(train_cases, device, repeats=repeats, min_sample_s=min_sample_s)
    evals = time_interleaved(eval_cases, device, repeats=repeats, min_sample_s=min_sample_s)
    results = []
    for name in MODELS:
        # Mean iterations of the step-size refresh per CSC layer and timed training step (the
        # timing's warm-up calls included, the settling steps not).
        iterations = statistics.mean(power_iterations[name]) if power_iterations[name] else None
        flops = count_flops(name, width, image_size)
        # Per image of a training step: the solver's work plus the refresh spread over the batch.
        train_gflops = flops["train"] + (iterations or 0.0) * flops["power_iteration"] / batch_size
        results.append(dict(
            model=name,
            train_ms=_ms(train[name]), train_images_per_s=batch_size / statistics.median(train[name]),
            train_relative=_median_ratio(train[BASELINE], train[name]),
            eval_ms=_ms(evals[name]), eval_images_per_s=batch_size / statistics.median(evals[name]),
            eval_relative=_median_ratio(evals[BASELINE], evals[name]),
            power_iterations=iterations,
            train_gflops_per_image=train_gflops, eval_gflops_per_image=flops["eval"],
            power_iteration_gflops=flops["power_iteration"],
        ))
    base = next(r for r in results if r["model"] == BASELINE)
    for r in results:  # the throughput ratios the arithmetic allows
        r["train_flops_bound"] = base["train_gflops_per_image"] / r["train_gflops_per_image"]
        r["eval_flops_bound"] = base["eval_gflops_per_image"] / r["eval_gflops_per_image"]
        if ceiling_gflops is not None:
            r["train_gflops_per_s"] = r["train_images_per_s"] * r["train_gflops_per_image"]
            r["train_ceiling_share"] = r["train_gflops_per_s"] / ceiling_gflops
            r["train_images_per_s_at_ceiling"] = ceiling_gflops / r["train_gflops_per_image"]
    return results


def _flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def count_flops(name: str, width: int, image_size: int) -> dict[str, float]:
    """GFLOPs of ``name``: per image for a training step (forward + backward, the step size
    already fresh) and an evaluation step, and per power iteration of the step-size refresh (all
    CSC layers, independent of the batch). Counted on the CPU with one image."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build(name, NUM_CLASSES, width=width)
        x, y = torch.rand(1, 3, image_size, image_size), torch.zeros(1, dtype=torch.long)
    sizes: dict[CSCConv2d, tuple[int, int]] = {}  # each CSC layer's input size
    record = lambda layer, args: sizes.update({layer: tuple(args[0].shape[-2:])})  # noqa: E731
    hooks = [layer.register_forward_pre_hook(record) for _, layer in csc_layers(model)]
    with torch.no_grad():
        # Refresh every step size until it has converged (a refresh cut off at its iteration limit
        # is continued by the next call): the counted steps below then run no power iteration.
        for _ in range(100):
            model(x)
            if not any(layer.power_iterations for layer in sizes):
                break
    for h in hooks:
        h.remove()

    def train_step() -> None:
        F.cross_entropy(model(x), y).backward()

    def eval_step() -> None:
        with torch.no_grad():
            model(x)

    model.train()
    train = _flops(train_step)
    model.eval()
    evaluation = _flops(eval_step)
    per_iteration = 0.0
    for layer, size in sizes.items():
        layer.forget_step_size()
        per_iteration += _flops(lambda layer=layer, size=size: layer.refresh_step_size(size)) / layer.power_iterations
    return dict(train=train / 1e9, eval=evaluation / 1e9, power_iteration=per_iteration / 1e9)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


PRECISIONS = ("float32", "bf16")


def default_precisions(device: torch.device) -> list[str]:
    """bf16 on CUDA; float32 and bf16 on a CPU that multiplies bf16 natively; else float32."""
    if device.type == "cuda":
        return ["bf16"]
    return ["float32", "bf16"] if cpu_has_native_bf16() else ["float32"]


def run_benchmark(
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    repeats: int = 5,
    quick: bool = False,
    *,
    settle_steps: int = SETTLE_STEPS,
    width: int = 64,
    precisions: list[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Time the CSC layers against convs and SDNet-18(-All) against ResNet-18; returns a JSON-able dict.

    ``batch_size`` defaults to 128 on CUDA (the paper's CIFAR batch) and 32 on CPU; ``width`` is the
    networks' stem width (64 in the paper). ``precisions``: some of ``float32``, ``bf16`` (default:
    :func:`default_precisions`), each measured in full, one after the other. ``quick`` runs tiny
    sizes for a smoke test (and ignores ``batch_size``, ``repeats``, ``settle_steps`` and ``width``).
    The caller's RNG state is left untouched.
    """
    device = resolve_device(device)
    cuda = device.type == "cuda"
    precisions = default_precisions(device) if precisions is None else list(precisions)
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ValueError(f"precisions must be some of {PRECISIONS}, got {precisions}")
    image_size = IMAGE_SIZE
    if quick:
        width, image_size = QUICK["width"], QUICK["image_size"]
        batch_size, repeats, settle_steps = QUICK["batch_size"], QUICK["repeats"], QUICK["settle_steps"]
    elif batch_size is None:
        batch_size = 128 if cuda else 32
    if batch_size < 1 or repeats < 1 or settle_steps < 0 or width < 1:
        raise ValueError(f"need batch_size, repeats, width >= 1 and settle_steps >= 0, got {batch_size}, {repeats}, {width}, {settle_steps}")
    # Short GPU calls are timed over runs of at least 20 ms; on CPU every call is long enough.
    min_sample_s = 0.02 if cuda and not quick else 0.0
    ceiling_size = CEILING_SIZE["quick"] if quick else CEILING_SIZE.get(device.type, CEILING_SIZE["cpu"])

    def log(message: str) -> None:
        if progress:
            print(message, file=sys.stderr, flush=True)

    # CUDA events and synchronisations act on the current device: make it the benchmarked one.
    on_device = torch.cuda.device(device) if cuda else contextlib.nullcontext()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # as in training: fixed shapes, best algorithms
    runs = {}
    try:
        with on_device, torch.random.fork_rng(devices=[device] if cuda else []):
            for precision in precisions:
                torch.manual_seed(0)
                bf16 = precision == "bf16"
                shapes = distinct_csc_shapes(build("sdnet18_all", NUM_CLASSES, width=width), image_size)
                layers = []
                for i, shape in enumerate(shapes):
                    log(f"{precision}: layer {i + 1}/{len(shapes)}: {_shape_name(shape)}")
                    layers.append(bench_layer(shape, device, batch_size, repeats, min_sample_s, first_layer=i == 0, bf16=bf16))
                # Emulated bf16 (a CPU without native bf16) multiplies matrices slower than the
                # convolutions it is compared with: no ceiling there.
                ceiling = None
                if not bf16 or cuda or cpu_has_native_bf16():
                    log(f"{precision}: the ceiling: a {ceiling_size}x{ceiling_size} matrix product")
                    ceiling = matmul_ceiling(device, bf16, ceiling_size, repeats, min_sample_s)
                log(f"{precision}: models: {', '.join(MODELS)}")
                models = bench_models(device, batch_size, repeats, min_sample_s, width, image_size, settle_steps, bf16=bf16, ceiling_gflops=ceiling)
                runs[precision] = dict(layers=layers, models=models)
                if ceiling is not None:
                    runs[precision]["ceiling"] = dict(matmul_size=ceiling_size, gflops_per_s=ceiling)
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    first = shapes[0]
    return dict(
        device=dict(type=device.type, name=_device_name(device), threads=torch.get_num_threads(), native_bf16=cuda or cpu_has_native_bf16()),
        torch=torch.__version__,
        cuda=torch.version.cuda if cuda else None,
        settings=dict(
            batch_size=batch_size, repeats=repeats, settle_steps=settle_steps, quick=quick, width=width, image_size=image_size,
            precisions=precisions, channels_last=True,
            lam=first["lam"], n_steps=first["n_steps"], non_negative=first["non_negative"],
            optimizer=dict(name="SGD", **SGD),
        ),
        precisions=runs,
    )


def format_table(result: dict[str, Any]) -> str:
    """The result as plain-text tables per precision (times are medians, ratios medians of
    per-round ratios), then the models' ratios of all precisions side by side."""
    s, d = result["settings"], result["device"]
    head = (
        f"{d['name']} ({d['type']}, {d['threads']} threads), torch {result['torch']}, "
        f"width {s['width']}, batch {s['batch_size']}, median of {s['repeats']}"
        f", models timed after {s.get('settle_steps', 0)} training steps"
        f"; CSC: lam {s['lam']}, {s['n_steps']} steps, {'non-negative' if s['non_negative'] else 'signed'}"
    )
    lines = [head]
    for precision, run in result["precisions"].items():
        lines += ["", f"[{precision}] CSCConv2d vs nn.Conv2d, ms per call (ratio: CSC time / conv time)"]
        lines.append(
            f"{'shape':<26}{'layers':>7} | {'conv f+b':>9}{'CSC f+b':>9}{'ratio':>7} | {'conv fwd':>9}{'CSC fwd':>9}{'ratio':>7}"
        )
        for r in run["layers"]:
            lines.append(
                f"{r['shape']:<26}{r['count']:>7} | {r['conv_train_ms']:>9.2f}{r['csc_train_ms']:>9.2f}{r['train_ratio']:>7.2f}"
                f" | {r['conv_forward_ms']:>9.2f}{r['csc_forward_ms']:>9.2f}{r['forward_ratio']:>7.2f}"
            )
        lines += ["", f"[{precision}] Models (CIFAR stem), images/s (rel.: throughput relative to {BASELINE}; bound: what FLOPs allow)"]
        lines.append(
            f"{'model':<14} | {'train img/s':>12}{'rel.':>7}{'bound':>7}{'GFLOP':>7} | {'eval img/s':>12}{'rel.':>7}{'bound':>7}{'GFLOP':>7} | power it."
        )
        for r in run["models"]:
            iterations = "-" if r["power_iterations"] is None else f"{r['power_iterations']:.1f}"
            lines.append(
                f"{r['model']:<14} | {r['train_images_per_s']:>12.1f}{r['train_relative']:>7.2f}{r['train_flops_bound']:>7.2f}"
                f"{r['train_gflops_per_image']:>7.2f} | {r['eval_images_per_s']:>12.1f}{r['eval_relative']:>7.2f}"
                f"{r['eval_flops_bound']:>7.2f}{r['eval_gflops_per_image']:>7.2f} | {iterations:>9}"
            )
        if "ceiling" in run:
            c = run["ceiling"]
            lines += ["", f"[{precision}] The ceiling: a {c['matmul_size']}x{c['matmul_size']} matrix product at {c['gflops_per_s']:.1f} GFLOP/s; training steps against it"]
            lines.append(f"{'model':<14} | {'GFLOP/s':>9}{'share':>7} | {'img/s at the ceiling':>21}{'CIFAR epoch (s)':>16}")
            for r in run["models"]:
                at_ceiling = r["train_images_per_s_at_ceiling"]
                lines.append(
                    f"{r['model']:<14} | {r['train_gflops_per_s']:>9.1f}{r['train_ceiling_share']:>7.0%} | {at_ceiling:>21.0f}{CIFAR_TRAIN_IMAGES / at_ceiling:>16.0f}"
                )
    lines.append("(power it.: mean iterations of the step-size power iteration per CSC layer and training step;")
    lines.append(" GFLOP: per image, convolutions and linear layers, the training step's including its share of the refresh)")
    names = list(result["precisions"])
    lines += ["", f"Relative to {BASELINE}, by precision (train | eval; bound: what FLOPs allow)"]
    lines.append(f"{'model':<14} | " + "".join(f"{n:>9}" for n in names) + f"{'bound':>7} | " + "".join(f"{n:>9}" for n in names) + f"{'bound':>7}")
    for i, r in enumerate(result["precisions"][names[0]]["models"]):
        rows = [result["precisions"][n]["models"][i] for n in names]
        lines.append(
            f"{r['model']:<14} | " + "".join(f"{x['train_relative']:>9.2f}" for x in rows) + f"{r['train_flops_bound']:>7.2f} | "
            + "".join(f"{x['eval_relative']:>9.2f}" for x in rows) + f"{r['eval_flops_bound']:>7.2f}"
        )
    return "\n".join(lines)


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Time CSC layers against convs and SDNet-18(-All) against ResNet-18.")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 128 on cuda, 32 on cpu")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per comparison (median reported)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice); 1 gives steadier numbers on a shared machine")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--settle-steps", type=int, default=SETTLE_STEPS, help="untimed training steps of each model before its training steps are timed (0: time the first steps after initialisation)")
    p.add_argument("--width", type=int, default=64, help="the networks' stem width (64 in the paper; 16 for the cpu profile's networks)")
    p.add_argument("--precision", choices=["auto", "both", *PRECISIONS], default="auto", help="auto: bf16 on CUDA, both on a CPU with native bf16, else float32")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks that it runs")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    precisions = {"auto": None, "both": list(PRECISIONS)}.get(args.precision, [args.precision])
    result = run_benchmark(
        args.device, args.batch_size, args.repeats, args.quick, settle_steps=args.settle_steps, width=args.width, precisions=precisions, progress=True
    )
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
