"""The GPU fast path: bf16 autocast, channels_last, torch.compile, the device-resident loader and
the power iteration's host reads, on CUDA. Skipped without a GPU.

``SDNET_TEST_DEVICE=cpu pytest tests/test_cuda.py`` runs the same checks on the CPU (bf16 autocast
exists there too): a dry run of this module before a GPU is at hand.
"""

import os

import pytest
import torch
import torch.nn.functional as F

from sdnet import CSCConv2d, csc
from sdnet.data import DeviceLoader, ImageSet
from sdnet.evaluate import autocast_for, evaluate
from sdnet.models import build

DEVICE = torch.device(os.environ.get("SDNET_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_csc_layer_bf16_against_float32_forward_and_gradients():
    torch.manual_seed(0)
    layer = CSCConv2d(32, 64, 3, 2, 1, n_steps=2).to(DEVICE)
    x = torch.randn(16, 32, 32, 32, device=DEVICE, requires_grad=True)
    z32 = layer(x)
    g32 = torch.autograd.grad(z32.square().sum(), [x, layer.weight])
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        z16 = layer(x)
    g16 = torch.autograd.grad(z16.float().square().sum(), [x, layer.weight])
    assert z16.dtype == torch.bfloat16  # the output follows autocast (the solver's sums are float32)
    assert relative(z16, z32) < 2e-2
    for a, b in zip(g16, g32):
        assert relative(a, b) < 5e-2


def _bf16_discrepancy(name: str) -> tuple[float, float]:
    """Relative difference of the loss and of all the gradients, bf16 autocast vs float32."""
    torch.manual_seed(0)
    model = build(name, 10, width=32).to(DEVICE)
    x, y = torch.rand(32, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (32,), device=DEVICE)
    losses, grads = [], []
    for bf16 in (False, True):
        model.zero_grad()
        with autocast_for(DEVICE, bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.float())
        grads.append(torch.cat([p.grad.flatten().float() for p in model.parameters()]))
    return relative(losses[1], losses[0]), relative(grads[1], grads[0])


def test_sdnet18_loss_and_gradients_bf16_against_float32():
    # At initialisation, on random labels, bf16 moves a ResNet-18's gradients by tens of percent
    # (small gradients that nearly cancel); the CSC stem must not make that worse.
    loss, grads = _bf16_discrepancy("sdnet18")
    reference_loss, reference_grads = _bf16_discrepancy("resnet18")
    assert loss < 2e-2 and reference_loss < 2e-2
    assert grads < 1.5 * reference_grads + 0.02, (grads, reference_grads)


def test_channels_last_gives_the_same_results():
    torch.manual_seed(0)
    model = build("sdnet18_all", 10, width=16).to(DEVICE).eval()
    x = torch.rand(8, 3, 32, 32, device=DEVICE)
    with torch.no_grad():
        plain = model(x)
        model.to(memory_format=torch.channels_last)
        last = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(last, plain, rtol=1e-3, atol=1e-3)


def test_compiled_training_step_breaks_the_graph_only_at_the_step_size_refresh():
    torch.manual_seed(0)
    model = build("sdnet18", 10, width=8).to(DEVICE)
    x, y = torch.rand(8, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (8,), device=DEVICE)

    def loss_fn(x, y):
        return F.cross_entropy(model(x), y)

    explanation = torch._dynamo.explain(loss_fn)(x, y)
    # The documented break: CSCConv2d.refresh_step_size (the power iteration, data-dependent
    # stopping) runs eagerly, once per CSC layer; everything else compiles. (One break splits
    # every enclosing frame, so there are more graphs than reasons.)
    reasons = [str(b.reason) for b in explanation.break_reasons]
    assert len(reasons) == len(csc.csc_layers(model)) and all("refresh_step_size" in r for r in reasons), reasons
    compiled = torch.compile(loss_fn)
    eager = loss_fn(x, y).item()
    assert compiled(x, y).item() == pytest.approx(eager, rel=1e-3)


def test_device_loader_gives_the_cpu_batches():
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(300) % 10, [str(i) for i in range(10)], "random")
    on_device = DeviceLoader(data, 64, train=True, device=DEVICE, seed=3)
    on_cpu = DeviceLoader(data, 64, train=True, device="cpu", seed=3)
    for loader in (on_device, on_cpu):
        loader.set_epoch(2)
    for (xd, yd), (xc, yc) in zip(on_device, on_cpu):
        assert xd.device.type == DEVICE.type
        torch.testing.assert_close(xd.cpu(), xc)
        assert torch.equal(yd.cpu(), yc)


def test_power_iteration_host_reads_are_batched_and_exact():
    torch.manual_seed(0)
    layer = CSCConv2d(16, 32, 3, 2, 1).to(DEVICE)
    weight = layer.weight.detach()
    op = layer.output_padding((16, 16))

    def gram(u):
        return csc.synthesize(csc.analyze(u, weight, 2, 1), weight, 2, 1, op)

    v0 = torch.randn(1, 16, 16, 16, device=DEVICE)
    per_iteration = csc.power_iteration(gram, v0, batched_reads=False)
    batched = csc.power_iteration(gram, v0, batched_reads=True)
    assert batched[2] == per_iteration[2]
    torch.testing.assert_close(batched[0], per_iteration[0], rtol=0, atol=0)
    if DEVICE.type == "cuda":  # the default on a GPU is the batched one
        assert csc.power_iteration(gram, v0)[2] == per_iteration[2]


def test_evaluation_on_the_fast_path_agrees_with_float32():
    torch.manual_seed(0)
    model = build("sdnet18", 10, width=16).to(DEVICE).eval()
    x, y = torch.rand(64, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (64,), device=DEVICE)
    fast = evaluate(model, [(x, y)], bf16=True, channels_last=True, probe=True)
    exact = evaluate(model, [(x, y)], bf16=False, channels_last=False, probe=True)
    assert fast["loss"] == pytest.approx(exact["loss"], rel=2e-2)
    assert fast["recon_error"] == pytest.approx(exact["recon_error"], rel=5e-2)
    assert abs(fast["top1"] - exact["top1"]) <= 100 * 3 / 64  # a few argmax flips at most
