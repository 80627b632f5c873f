"""SDNet-18-All must start learning about as fast as SDNet-18 (regression test for the -All block).

The -All networks once had a ReLU between ``bn1`` and ``conv2`` of every residual block, which the
authors' -All block does not have (their block is ``relu(bn2(csc2(bn1(csc1(x)))) + shortcut(x))``).
That extra ReLU made SDNet-18-All learn about twice as slowly in its first steps (CIFAR-10, width
16: training loss 2.02 after 100 steps against 1.64 for SDNet-18), and at the quick CPU budgets it
looked like a network stuck at chance.

The problem here is small and easy, so that learning starts at the first step for every network:
10 classes, each a smooth random colour template, shown at a random contrast with pixel noise
(16x16 images). The networks are CPU-sized (width 8), trained with the project's optimiser
(SGD, Nesterov momentum 0.9, lr 0.05, weight decay 5e-4) on the same batches. The measure is the
mean training loss over the first STEPS steps (the area under the loss curve), per seed, as a
multiple of SDNet-18's on the same seed. Measured ratios (seeds 0, 1, 2): with the fix 1.21, 1.28,
1.02 (shortcut) and 1.22, 1.32, 1.24 (no shortcut); with the extra ReLU 2.19, 2.37, 1.99. The
bound, 1.6, sits between them.
"""

import pytest
import torch
import torch.nn.functional as F

from sdnet.models import build
from sdnet.threads import one_thread

STEPS = 40
# -All's mean loss over the first STEPS steps, as a multiple of SDNet-18's: at most BOUND averaged
# over SEEDS, and at most SEED_BOUND on any one. A single seed's ratio depends on the machine's
# rounding (no-shortcut, seed 1: under 1.6 on one Xeon, 1.62 on an AMD EPYC, 1.69 there with an
# earlier layer whose rounding differed); their mean is steadier (1.24 here, 1.22 with shortcuts).
BOUND, SEED_BOUND = 1.4, 1.8
SEEDS = (0, 1, 2, 3)


def templates(n: int = 512, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """10 classes of smooth random colour templates at random contrast, plus noise; in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    template = F.interpolate(torch.rand(10, 3, 4, 4, generator=g), size=size, mode="bilinear", align_corners=False)
    y = torch.arange(n) % 10
    contrast = 0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=g)
    x = 0.5 + contrast * (template[y] - 0.5) + 0.15 * torch.randn(n, 3, size, size, generator=g)
    return x.clamp(0, 1), y


def mean_training_loss(name: str, seed: int, **options) -> float:
    x, y = templates()
    torch.manual_seed(seed)
    model = build(name, 10, width=8, **options)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    order = torch.Generator().manual_seed(0)  # the same batches for every network
    total = 0.0
    for _ in range(STEPS):
        idx = torch.randint(0, len(y), (64,), generator=order)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / STEPS


@pytest.fixture(scope="module")
def sdnet18_losses() -> dict[int, float]:
    with one_thread():
        return {seed: mean_training_loss("sdnet18", seed) for seed in SEEDS}


@pytest.mark.parametrize("shortcut", [True, False], ids=["shortcut", "no-shortcut"])
def test_sdnet18_all_learns_about_as_fast_as_sdnet18(sdnet18_losses, shortcut):
    with one_thread():
        ratios = {seed: mean_training_loss("sdnet18_all", seed, shortcut=shortcut) / sdnet18_losses[seed] for seed in SEEDS}
    # SDNet-18 itself must have learned, or the comparison says nothing.
    assert all(loss < 1.0 for loss in sdnet18_losses.values()), sdnet18_losses
    mean = sum(ratios.values()) / len(ratios)
    assert mean <= BOUND and all(r <= SEED_BOUND for r in ratios.values()), f"-All/SDNet-18 mean-loss ratios {ratios} (mean {mean:.3f})"


def test_all_blocks_have_no_relu_between_the_csc_layers():
    """The -All block is relu(bn2(csc2(bn1(csc1(x)))) + shortcut(x)); ResNet/SDNet-18 keep theirs."""
    torch.manual_seed(0)
    model = build("sdnet18_all", 10, width=8)
    block = model.layer1[0]
    x = torch.rand(2, 8, 8, 8)
    model.train()  # batch statistics: bn1's output is centred, so a ReLU after it would show
    with torch.no_grad():
        # A step-size estimate cut off at the power iteration's limit is continued by the next
        # call; a few calls converge it, and later calls reuse it: both sides then use the same t.
        for _ in range(5):
            block(x)
        expected = torch.relu(block.bn2(block.conv2(block.bn1(block.conv1(x)))) + x)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    for name in ("resnet18", "sdnet18"):
        assert all(b.inner_relu for b in build(name, 10, width=8).modules() if hasattr(b, "inner_relu"))
