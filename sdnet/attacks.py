"""PGD attacks against the test-time lambda, with torchattacks (``PGD`` and ``PGDL2``).

The paper attacks SDNet-18 trained with lambda = 0.1 on the CIFAR-10 test set: at lambda 0.1 it
is about as fragile as ResNet-18, and a larger test-time lambda raises its robust accuracy.

Settings (parameters of every function here; the defaults are the usual CIFAR-10 ones):

- ``norm="Linf"``, ``eps = 8/255``; ``norm="L2"``, ``eps = 0.5`` (pixel values in [0, 1]);
- ``steps = 10`` iterations of size ``alpha = eps / 4`` (2/255 for L-inf), each the signed
  (L-inf) or normalised (L2) gradient of the cross-entropy, projected back onto the eps-ball
  and the image range [0, 1];
- a random start in the eps-ball, drawn from the global RNG under a fixed seed per batch
  (``seed + batch index``) and without disturbing the caller's RNG state: every number is
  reproducible, and two evaluations of the same batch start from the same point.

Two threat models:

- white-box: the gradients are taken at the lambda being evaluated (``attack_lam = lam``);
- transfer: the examples are crafted at ``attack_lam`` (e.g. the training lambda) and evaluated
  at ``lam``: what a defender who changes lambda after the attack would see.

The model runs in eval mode throughout (BatchNorm uses its running statistics, and the attack
does not update them); its previous mode is restored. The CSC layer's forward pass is
differentiable with respect to its input (the unrolled FISTA steps), so the attack sees the same
function the evaluation does. Models take images in [0, 1] and normalise inside, as torchattacks
expects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType

import torch
from torch import Tensor, nn

from sdnet.csc import csc_layers
from sdnet.robustness import Batches, LayerChoice, at_lambda, evaluating, model_device, require_reiterable

NORMS = ("Linf", "L2")
DEFAULT_EPS = {"Linf": 8 / 255, "L2": 0.5}
DEFAULT_STEPS = 10
DEFAULT_ALPHA_FRACTION = 0.25  # alpha = eps / 4 unless given


def _torchattacks() -> ModuleType:
    """``import torchattacks``; it imports torchvision, whose CPU workaround lives in one place."""
    from sdnet._torchvision import import_torchvision

    import_torchvision()
    import torchattacks

    return torchattacks


def pgd(
    model: nn.Module, *, norm: str = "Linf", eps: float | None = None, steps: int = DEFAULT_STEPS, alpha: float | None = None
):
    """A torchattacks PGD attack (``PGD`` for L-inf, ``PGDL2`` for L2) with a random start.

    ``eps`` defaults to 8/255 (L-inf) or 0.5 (L2), ``alpha`` to ``eps / 4``.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    eps = DEFAULT_EPS[norm] if eps is None else float(eps)
    alpha = DEFAULT_ALPHA_FRACTION * eps if alpha is None else float(alpha)
    if eps < 0 or alpha < 0:
        raise ValueError(f"eps and alpha must be >= 0, got eps={eps}, alpha={alpha}")
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    ta = _torchattacks()
    attack = ta.PGD if norm == "Linf" else ta.PGDL2
    return attack(model, eps=eps, alpha=alpha, steps=steps, random_start=True)


def adversarial_examples(
    model: nn.Module, x: Tensor, y: Tensor, attack, *, lam: float | None = None, layers: LayerChoice = None, seed: int = 0
) -> Tensor:
    """``attack(x, y)`` with the CSC layers at ``lam`` (gradients taken there) and the random
    start drawn under ``seed``; the caller's RNG state is left as it was.

    ``eps = 0`` gives the images back unchanged (torchattacks' L2 projection would divide 0 by 0
    there), so an eps sweep may start at the clean accuracy.
    """
    if attack.eps == 0:
        return x.clone()
    device = x.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with evaluating(model), at_lambda(model, lam, layers):
            return attack(x, y)


@torch.no_grad()
def _correct(model: nn.Module, x: Tensor, y: Tensor, lam: float | None, layers: LayerChoice) -> int:
    with at_lambda(model, lam, layers):
        return (model(x).argmax(1) == y).sum().item()


def clean_accuracy(
    model: nn.Module,
    batches: Batches,
    *,
    lam: float | None = None,
    layers: LayerChoice = None,
    device: str | torch.device | None = None,
) -> float:
    """Top-1 accuracy (%) on the unmodified batches at ``lam`` (``None``: the layers' own)."""
    device = torch.device(device) if device is not None else model_device(model)
    correct = n = 0
    with evaluating(model):
        for x, y in batches:
            correct += _correct(model, x.to(device), y.to(device), lam, layers)
            n += len(y)
    if n == 0:
        raise ValueError("no batches to evaluate")
    return 100.0 * correct / n


def robust_accuracy(
    model: nn.Module,
    batches: Batches,
    *,
    norm: str = "Linf",
    eps: float | None = None,
    steps: int = DEFAULT_STEPS,
    alpha: float | None = None,
    lam: float | None = None,
    attack_lam: float | None = None,
    layers: LayerChoice = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Top-1 accuracy (%) on PGD examples, evaluated at ``lam``.

    The examples are crafted at ``attack_lam``; ``None`` means ``lam`` (white-box). ``lam=None``
    leaves the CSC layers at their own lambda; a model without CSC layers ignores both.
    """
    device = torch.device(device) if device is not None else model_device(model)
    attack = pgd(model, norm=norm, eps=eps, steps=steps, alpha=alpha)
    attack_lam = lam if attack_lam is None else attack_lam
    correct = n = 0
    with evaluating(model):
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            adversarial = adversarial_examples(model, x, y, attack, lam=attack_lam, layers=layers, seed=seed + i)
            correct += _correct(model, adversarial, y, lam, layers)
            n += len(y)
    if n == 0:
        raise ValueError("no batches to attack")
    return 100.0 * correct / n


def pgd_vs_lambda(
    model: nn.Module,
    batches: Batches,
    lambdas: Sequence[float],
    *,
    train_lam: float,
    norm: str = "Linf",
    eps: float | None = None,
    steps: int = DEFAULT_STEPS,
    alpha: float | None = None,
    layers: LayerChoice = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Clean, white-box and transfer robust accuracy (%) at every test-time lambda.

    Rows: ``lam, clean, white_box, transfer``. ``white_box`` attacks at ``lam``; ``transfer``
    evaluates at ``lam`` the examples crafted at ``train_lam`` (equal to ``white_box`` at
    ``lam = train_lam``). Each number equals the matching :func:`clean_accuracy` /
    :func:`robust_accuracy` call, but the transfer examples are crafted once per batch for all
    lambdas. A model without CSC layers is attacked once and its numbers repeated for every lambda.
    """
    require_reiterable(batches)
    device = torch.device(device) if device is not None else model_device(model)
    attack = pgd(model, norm=norm, eps=eps, steps=steps, alpha=alpha)
    has_lambda = bool(csc_layers(model))
    grid = [float(lam) for lam in lambdas] if has_lambda else [None]
    counts = {lam: {"clean": 0, "white_box": 0, "transfer": 0} for lam in grid}
    n = 0
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"PGD {norm}")
    with evaluating(model):
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            craft = dict(layers=layers, seed=seed + i)  # same seed as robust_accuracy on this batch
            transfer = adversarial_examples(model, x, y, attack, lam=train_lam if has_lambda else None, **craft)
            for lam in grid:
                same = lam is None or math.isclose(lam, train_lam)
                white = transfer if same else adversarial_examples(model, x, y, attack, lam=lam, **craft)
                counts[lam]["clean"] += _correct(model, x, y, lam, layers)
                counts[lam]["white_box"] += _correct(model, white, y, lam, layers)
                counts[lam]["transfer"] += _correct(model, transfer, y, lam, layers)
            n += len(y)
    if n == 0:
        raise ValueError("no batches to attack")
    rows = [{"lam": lam, **{k: 100.0 * v / n for k, v in counts[lam].items()}} for lam in grid]
    if not has_lambda:  # a ResNet has no lambda: one evaluation, repeated to line up with SDNet
        rows = [{**rows[0], "lam": float(lam)} for lam in lambdas]
    return rows
