"""Adversarial attacks against the test-time lambda, with torchattacks.

The paper attacks SDNet-18 trained with lambda = 0.1 on the CIFAR-10 test set: at lambda 0.1 it
is about as fragile as ResNet-18, and a larger test-time lambda raises its robust accuracy. An
unrolled solver with a ReLU shrinkage is the kind of layer that can *mask* gradients (a flat or
noisy loss surface that defeats gradient attacks without being robust), so a single attack is not
evidence. Every lambda is attacked by several attacks (:data:`ATTACKS`), and the number that
counts is the per-image worst case: an image is robust only if every attack fails on it.

- ``"pgd"``: torchattacks' ``PGD`` (L-inf) or ``PGDL2``: ``steps`` signed (L-inf) or normalised
  (L2) gradient steps of the cross-entropy of size ``alpha`` (``alpha_fraction * eps``), projected
  onto the eps-ball and [0, 1], from a random start in the ball;
- ``"apgd-ce"``, ``"apgd-dlr"``: Auto-PGD (Croce & Hein 2020) on the cross-entropy and on the
  difference-of-logits-ratio loss (invariant to the logits' scale, so a saturated softmax cannot
  hide the gradient), ``steps`` iterations, ``restarts`` random restarts, step size set by the
  attack itself;
- ``"autoattack"``: AutoAttack's standard ensemble (APGD-CE, APGD-T, FAB-T, Square); much slower.

Random starts are drawn under a fixed seed per batch (``seed + batch index``) without disturbing
the caller's RNG: every number is reproducible. Two threat models at each test-time lambda:
*white-box*, gradients taken at the lambda being evaluated; *transfer*, examples crafted at the
training lambda (what a defender who turns lambda up after the attack would see). The model runs
in eval mode throughout, in float32 (bf16 rounding could itself blunt the gradients); its previous
mode is restored. Models take images in [0, 1] and normalise inside, as torchattacks expects.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sdnet.evaluate import Batches, LayerChoice, at_lambda, evaluating, has_lambda, model_device

NORMS = ("Linf", "L2")
ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "autoattack")
DEFAULT_EPS = {"Linf": 8 / 255, "L2": 0.5}
WORST = "worst case"  # the attack name of the per-image worst case over the attacks run
RESTART_SEEDS = 100_003  # restart r of batch i starts from seed + i + r * RESTART_SEEDS: no two draws share a seed


def _torchattacks() -> ModuleType:
    """``import torchattacks``; it imports torchvision, whose CPU workaround lives in one place."""
    from sdnet._torchvision import import_torchvision

    import_torchvision()
    import torchattacks

    return torchattacks


class _ContiguousGradient(torch.autograd.Function):
    """The identity, whose backward hands back a contiguous (NCHW) gradient."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


class _AttackView(nn.Module):
    """``model`` as torchattacks sees it: its input gradient made NCHW, because torchattacks
    ``.view``s gradients, and a channels_last model (as we train and evaluate them: faster on
    CPUs and GPUs) gives its input a channels_last gradient."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(_ContiguousGradient.apply(x))


@dataclass(frozen=True)
class AttackSpec:
    """One attack at one radius: ``kind`` (one of :data:`ATTACKS`), ``norm``, ``eps`` (pixel
    values in [0, 1]), ``steps``, ``restarts`` (APGD's random restarts), ``alpha`` (PGD's step
    size; default ``eps / 4``)."""

    kind: str = "pgd"
    norm: str = "Linf"
    eps: float = DEFAULT_EPS["Linf"]
    steps: int = 10
    restarts: int = 1
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ValueError(f"kind must be one of {ATTACKS}, got {self.kind!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not self.eps >= 0 or not (self.alpha is None or self.alpha >= 0):
            raise ValueError(f"eps and alpha must be >= 0, got eps={self.eps}, alpha={self.alpha}")
        for name in ("steps", "restarts"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    def build(self, model: nn.Module, num_classes: int, seed: int = 0):
        """The torchattacks attack object for ``model``."""
        ta = _torchattacks()
        model = _AttackView(model)
        if self.kind == "pgd":
            attack = ta.PGD if self.norm == "Linf" else ta.PGDL2
            alpha = self.eps / 4 if self.alpha is None else self.alpha
            return attack(model, eps=self.eps, alpha=alpha, steps=self.steps, random_start=True)
        if self.kind.startswith("apgd"):
            loss = self.kind.split("-")[1]
            if loss == "dlr" and num_classes < 3:
                raise ValueError("APGD-DLR needs at least 3 classes (its loss uses the three largest logits)")
            return ta.APGD(model, norm=self.norm, eps=self.eps, steps=self.steps, n_restarts=self.restarts, seed=seed, loss=loss)
        if num_classes < 10:
            raise ValueError("AutoAttack (standard) needs at least 10 classes (its APGD-T attacks 9 target classes)")
        return ta.AutoAttack(model, norm=self.norm, eps=self.eps, version="standard", n_classes=num_classes, seed=seed)


def pgd(model: nn.Module, *, norm: str = "Linf", eps: float | None = None, steps: int = 10, alpha: float | None = None):
    """A torchattacks PGD attack (``PGD`` for L-inf, ``PGDL2`` for L2) with a random start.

    ``eps`` defaults to 8/255 (L-inf) or 0.5 (L2), ``alpha`` to ``eps / 4``.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    eps = DEFAULT_EPS.get(norm, 0.0) if eps is None else float(eps)
    return AttackSpec("pgd", norm, eps, steps, alpha=alpha).build(model, num_classes=2)


def adversarial_examples(
    model: nn.Module, x: Tensor, y: Tensor, attack, *, lam: float | None = None, layers: LayerChoice = None, seed: int = 0
) -> Tensor:
    """``attack(x, y)`` with the CSC layers at ``lam`` (gradients taken there) and the random
    start drawn under ``seed``; the caller's RNG state is left as it was.

    ``eps = 0`` gives the images back unchanged (torchattacks' L2 projection would divide 0 by 0
    there), so an eps sweep may start at the clean accuracy.
    """
    return _crafted(model, x, y, attack, at_lambda(model, lam, layers), seed)


def _crafted(model: nn.Module, x: Tensor, y: Tensor, attack, setting: contextlib.AbstractContextManager, seed: int) -> Tensor:
    """``attack(x, y)`` inside ``setting`` (the model's test-time setting the gradients are taken
    at), its random start drawn under ``seed``, the caller's RNG state left as it was."""
    if attack.eps == 0:
        return x.clone()
    device = x.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if hasattr(attack, "seed"):  # APGD and AutoAttack seed the global RNG themselves
            attack.seed = seed
        with evaluating(model), setting:
            return attack(x, y)


@torch.no_grad()
def _correct(model: nn.Module, x: Tensor, y: Tensor, setting: contextlib.AbstractContextManager) -> Tensor:
    """Per-image correctness (bool [N]) inside ``setting``, in float32, on the device."""
    with setting:
        return model(x).argmax(1) == y


Setting = Callable[[float | None], contextlib.AbstractContextManager]


def attack_vs_setting(
    model: nn.Module,
    batches: Batches,
    values: Sequence[float | None],
    attacks: Sequence[AttackSpec],
    *,
    setting: Setting,
    craft_at: float | None,
    num_classes: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    per_image: bool = False,
) -> list[dict[str, Any]]:
    """Clean, white-box and transfer robust accuracy (%) at every value of a test-time setting.

    The setting is a knob the defender turns after training: SDNet's lambda
    (:func:`attack_vs_lambda`), or the strength of a filter in front of a model
    (:class:`sdnet.denoise.Filtered`); ``setting(value)`` is a context manager that puts the
    model at ``value``. ``attacks`` share one ``norm`` and ``eps`` (the radius being evaluated).
    Rows: ``attack`` (an :class:`AttackSpec` kind, or :data:`WORST` for the per-image worst case
    over all of them), ``value``, ``clean``, ``white_box`` (gradients taken at ``value``: the
    attacker knows the setting) and ``transfer`` (examples crafted at ``craft_at``, what the
    model was when the attacker looked, evaluated at ``value``; equal to ``white_box`` there).
    The transfer examples are crafted once per batch and attack, for every value. With
    ``per_image``, each row also holds which images were right (bool arrays in the batches'
    order): ``correct_clean``, ``correct_white_box``, ``correct_transfer``.
    """
    if len({(a.norm, a.eps) for a in attacks}) != 1:
        raise ValueError("attack_vs_setting: the attacks must share one norm and eps")
    device = torch.device(device) if device is not None else model_device(model)
    names = [a.kind for a in attacks] + ([WORST] if len(attacks) > 1 else [])
    # Per batch, on the device: robust [value, attack (+ worst), (white_box, transfer), image], clean [value, image].
    robust, clean = [], []
    built = [spec.build(model, num_classes, seed) for spec in attacks]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=f"{'/'.join(names[: len(attacks)])} {attacks[0].norm} eps {attacks[0].eps:.4g}", leave=False)
    with evaluating(model):
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            # the same random start for every value
            transfer = [_crafted(model, x, y, a, setting(craft_at), seed + i) for a in built]
            hits = torch.zeros(len(values), len(names), 2, len(y), dtype=torch.bool, device=device)
            right = torch.zeros(len(values), len(y), dtype=torch.bool, device=device)
            for g, value in enumerate(values):
                same = value is None or (craft_at is not None and math.isclose(value, craft_at))
                white = transfer if same else [_crafted(model, x, y, a, setting(value), seed + i) for a in built]
                right[g] = _correct(model, x, y, setting(value))
                for k in range(len(built)):
                    hits[g, k] = torch.stack([_correct(model, white[k], y, setting(value)), _correct(model, transfer[k], y, setting(value))])
                if len(attacks) > 1:
                    hits[g, -1] = hits[g, : len(built)].all(0)
            robust.append(hits)
            clean.append(right)
    if not robust:
        raise ValueError("no batches to attack")
    robust, clean = torch.cat(robust, -1).cpu().numpy(), torch.cat(clean, -1).cpu().numpy()  # one host read each
    rows = []
    for g, value in enumerate(values):
        for k, name in enumerate(names):
            row = {"attack": name, "value": value, "clean": 100.0 * clean[g].mean(),
                   "white_box": 100.0 * robust[g, k, 0].mean(), "transfer": 100.0 * robust[g, k, 1].mean()}
            if per_image:
                row.update(correct_clean=clean[g], correct_white_box=robust[g, k, 0], correct_transfer=robust[g, k, 1])
            rows.append(row)
    return rows


def survivors(
    model: nn.Module,
    batches: Batches,
    attack: AttackSpec,
    *,
    setting: contextlib.AbstractContextManager | Callable[[], contextlib.AbstractContextManager],
    num_classes: int,
    restarts: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Which images (bool, in the batches' order) stay correctly classified under ``attack``
    crafted white-box inside ``setting`` (a context manager factory), run ``restarts`` times from
    independent random starts: an image survives only if every run fails on it. A restart loop
    around an attack that has none (PGD), so that "more restarts" is a real check."""
    device = torch.device(device) if device is not None else model_device(model)
    built = attack.build(model, num_classes, seed)
    enter = setting if callable(setting) else (lambda: setting)
    out = []
    with evaluating(model):
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            alive = _correct(model, x, y, enter())
            for r in range(restarts):
                x_adv = _crafted(model, x, y, built, enter(), seed + i + RESTART_SEEDS * r)
                alive &= _correct(model, x_adv, y, enter())
            out.append(alive)
    return torch.cat(out).cpu().numpy()


def transferred(
    source: nn.Module,
    model: nn.Module,
    batches: Batches,
    values: Sequence[float],
    attacks: Sequence[AttackSpec],
    *,
    setting: Setting,
    num_classes: int,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> list[dict[str, Any]]:
    """Robust accuracy (%) of ``model`` at every value of its setting on examples crafted on
    another network, ``source`` (a black-box transfer attack: e.g. crafted on ResNet-18, evaluated
    on SDNet-18 at each lambda), with the per-image worst case over ``attacks``. Rows: ``attack``,
    ``value``, ``robust``, ``correct`` (bool per image). The random starts are those of
    :func:`attack_vs_setting` on ``source``, so the examples are the ones its rows used."""
    device = torch.device(device) if device is not None else model_device(model)
    names = [a.kind for a in attacks] + ([WORST] if len(attacks) > 1 else [])
    built = [spec.build(source, num_classes, seed) for spec in attacks]
    per_batch = []
    with evaluating(model):
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            crafted = [_crafted(source, x, y, a, contextlib.nullcontext(), seed + i) for a in built]
            hits = torch.zeros(len(values), len(names), len(y), dtype=torch.bool, device=device)
            for g, value in enumerate(values):
                for k, x_adv in enumerate(crafted):
                    hits[g, k] = _correct(model, x_adv, y, setting(value))
                if len(attacks) > 1:
                    hits[g, -1] = hits[g, : len(built)].all(0)
            per_batch.append(hits)
    hits = torch.cat(per_batch, -1).cpu().numpy()
    return [{"attack": name, "value": value, "robust": 100.0 * hits[g, k].mean(), "correct": hits[g, k]}
            for g, value in enumerate(values) for k, name in enumerate(names)]


def attack_vs_lambda(
    model: nn.Module,
    batches: Batches,
    lambdas: Sequence[float],
    attacks: Sequence[AttackSpec],
    *,
    train_lam: float,
    num_classes: int,
    layers: LayerChoice = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[dict[str, float | str]]:
    """:func:`attack_vs_setting` with SDNet's test-time lambda as the setting: rows ``attack, lam,
    clean, white_box, transfer``; transfer examples are crafted at ``train_lam`` (the paper's
    protocol). A model without CSC layers is attacked once, with ``lam`` NaN in its rows.
    """
    with_lambda = has_lambda(model)
    rows = attack_vs_setting(
        model, batches, [float(lam) for lam in lambdas] if with_lambda else [None], attacks,
        setting=lambda lam: at_lambda(model, lam, layers), craft_at=train_lam if with_lambda else None,
        num_classes=num_classes, seed=seed, device=device, progress=progress,
    )
    return [{"attack": r["attack"], "lam": float("nan") if r["value"] is None else r["value"],
             **{k: r[k] for k in ("clean", "white_box", "transfer")}} for r in rows]


def adversarial_views(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, steps: int, lambdas: list[float]) -> dict[str, Any]:
    """What chapter 4 shows of one attack: PGD examples of ``x`` at L-inf ``eps`` crafted on
    ``model`` at ``lambdas[0]`` (its training lambda), the perturbation, and at each of ``lambdas``
    the stem's reconstruction of the example and of the clean image (pixels,
    :func:`sdnet.robustness.stem_reconstructions`) and the predicted classes of the example."""
    from sdnet.robustness import stem_reconstructions

    x_adv = adversarial_examples(model, x, y, pgd(model, eps=eps, steps=steps), lam=lambdas[0])
    predicted = {}
    for lam in lambdas:
        with torch.no_grad(), at_lambda(model, lam):
            predicted[lam] = model(x_adv).argmax(1)
    return {"x_adv": x_adv, "delta": x_adv - x, "views": stem_reconstructions(model, x_adv, lambdas),
            "clean_views": stem_reconstructions(model, x, lambdas), "predicted": predicted}
