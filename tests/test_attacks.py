"""Attacks against the test-time lambda, on a tiny SDNet trained inside the test."""

import contextlib
import math

import pytest
import torch
from torch import nn

from sdnet import CSCConv2d
from sdnet.attacks import AttackSpec, adversarial_examples, attack_vs_lambda, pgd
from sdnet.evaluate import Batches, LayerChoice, Tally, at_lambda, evaluate, evaluating, model_device
from sdnet.models import Normalize
from toy_problem import train, two_colours


def robust_accuracy(  # the reference the sweeps are checked against: one attack, one lambda, by hand
    model: nn.Module,
    batches: Batches,
    *,
    norm: str = "Linf",
    eps: float | None = None,
    steps: int = 10,
    alpha: float | None = None,
    lam: float | None = None,
    attack_lam: float | None = None,
    layers: LayerChoice = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Top-1 accuracy (%) on PGD examples, evaluated at ``lam`` (the straightforward loop that
    :func:`sdnet.attacks.attack_vs_lambda` must agree with).

    The examples are crafted at ``attack_lam``; ``None`` means ``lam`` (white-box). ``lam=None``
    leaves the CSC layers at their own lambda; a model without CSC layers ignores both.
    """
    device = torch.device(device) if device is not None else model_device(model)
    attack = pgd(model, norm=norm, eps=eps, steps=steps, alpha=alpha)
    attack_lam = lam if attack_lam is None else attack_lam
    tally = Tally(device)
    with evaluating(model):
        for i, (x, y) in enumerate(batches):
            x, y = x.to(device), y.to(device)
            adversarial = adversarial_examples(model, x, y, attack, lam=attack_lam, layers=layers, seed=seed + i)
            with torch.no_grad(), at_lambda(model, lam, layers):
                tally.add(model(adversarial), y)
    return tally.result()["top1"]


def pgd_vs_lambda(model, batches, lambdas, *, train_lam, norm="Linf", eps, steps):
    """attack_vs_lambda with PGD alone, one row per lambda."""
    rows = attack_vs_lambda(model, batches, lambdas, [AttackSpec("pgd", norm, eps, steps)], train_lam=train_lam, num_classes=2)
    return [{k: v for k, v in row.items() if k != "attack"} for row in rows]


@pytest.fixture(scope="module")
def sdnet() -> nn.Module:
    torch.manual_seed(0)
    csc = CSCConv2d(3, 8, 3, padding=1, lam=0.1)
    layers = [Normalize((0.5,) * 3, (0.25,) * 3), csc, nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)]
    return train(nn.Sequential(*layers))


@pytest.fixture(scope="module")
def plain() -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)]
    return train(nn.Sequential(*layers))


@pytest.fixture(scope="module")
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = two_colours(32, seed=2)
    return [(x[:16], y[:16]), (x[16:], y[16:])]


@contextlib.contextmanager
def lambdas_seen(layer: CSCConv2d):
    """The layer's lambda at every forward call inside the block, with whether autograd was on
    (on: the attack taking gradients; off: the evaluation)."""
    seen: list[tuple[float, bool]] = []
    hook = layer.register_forward_pre_hook(lambda module, inputs: seen.append((module.lam, torch.is_grad_enabled())))
    try:
        yield seen
    finally:
        hook.remove()


def test_robust_accuracy_falls_with_eps(sdnet, batches):
    clean = evaluate(sdnet, batches)["top1"]
    assert clean == 100.0
    for norm, epsilons in [("Linf", [0.0, 0.02, 0.1, 0.3]), ("L2", [0.0, 0.5, 2.0, 6.0])]:
        accuracy = [robust_accuracy(sdnet, batches, norm=norm, eps=eps, steps=5) for eps in epsilons]
        assert accuracy[0] == clean  # eps 0 leaves the images as they are
        assert all(a >= b for a, b in zip(accuracy, accuracy[1:])), (norm, accuracy)
        assert accuracy[-1] < 50.0, (norm, accuracy)


def test_adversarial_examples_stay_in_the_ball_and_the_image_range(sdnet, batches):
    x, y = batches[0]
    for norm, eps in [("Linf", 0.05), ("L2", 0.5)]:
        adversarial = adversarial_examples(sdnet, x, y, pgd(sdnet, norm=norm, eps=eps, steps=3))
        delta = (adversarial - x).flatten(1)
        size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
        assert (size <= eps + 1e-5).all() and adversarial.min() >= 0 and adversarial.max() <= 1


def test_white_box_and_transfer_take_gradients_at_their_own_lambda(sdnet, batches):
    layer = sdnet[1]
    with lambdas_seen(layer) as seen:
        robust_accuracy(sdnet, batches[:1], eps=0.05, steps=3, lam=1.0, attack_lam=0.1)  # transfer
    assert {lam for lam, grad in seen if grad} == {0.1} and {lam for lam, grad in seen if not grad} == {1.0}
    with lambdas_seen(layer) as seen:
        robust_accuracy(sdnet, batches[:1], eps=0.05, steps=3, lam=1.0)  # white-box
    assert {lam for lam, _ in seen} == {1.0} and sum(grad for _, grad in seen) == 3
    assert layer.lam == 0.1
    x, y = batches[0]
    attack = pgd(sdnet, eps=0.05, steps=3)
    at_small, at_large = (adversarial_examples(sdnet, x, y, attack, lam=lam) for lam in (0.1, 1.0))
    assert not torch.equal(at_small, at_large)


def test_the_random_start_is_seeded_and_leaves_the_global_rng_alone(sdnet, batches):
    state = torch.get_rng_state()
    first = robust_accuracy(sdnet, batches, eps=0.1, steps=1, alpha=0.0)  # the random start only
    assert torch.equal(torch.get_rng_state(), state)
    assert robust_accuracy(sdnet, batches, eps=0.1, steps=1, alpha=0.0) == first


def test_pgd_vs_lambda_matches_the_single_evaluations(sdnet, batches):
    sdnet.train()  # the attack and the evaluation switch to eval mode and back
    running_mean = sdnet[2].running_mean.clone()
    rows = pgd_vs_lambda(sdnet, batches, [0.1, 1.0], train_lam=0.1, eps=0.1, steps=3)
    assert sdnet.training and torch.equal(sdnet[2].running_mean, running_mean)
    sdnet.eval()
    assert [r["lam"] for r in rows] == [0.1, 1.0]
    assert rows[0]["white_box"] == rows[0]["transfer"]  # at the training lambda both are one attack
    for row in rows:
        assert row["white_box"] <= row["clean"] and row["transfer"] <= row["clean"]
        assert row["clean"] == evaluate(sdnet, batches, lam=row["lam"])["top1"]
        assert row["white_box"] == robust_accuracy(sdnet, batches, eps=0.1, steps=3, lam=row["lam"])
        assert row["transfer"] == robust_accuracy(sdnet, batches, eps=0.1, steps=3, lam=row["lam"], attack_lam=0.1)


def test_a_model_without_lambda_is_attacked_once(plain, batches):
    (row,) = pgd_vs_lambda(plain, batches, [0.1, 0.5, 1.0], train_lam=0.1, norm="L2", eps=1.0, steps=3)
    assert math.isnan(row["lam"])
    assert row["white_box"] == row["transfer"] <= row["clean"]


def test_bad_settings_fail_early(sdnet):
    with pytest.raises(ValueError, match="norm"):
        pgd(sdnet, norm="L1")
    with pytest.raises(ValueError, match="steps"):
        pgd(sdnet, steps=0)
    attack = pgd(sdnet, norm="L2")
    assert attack.eps == 0.5 and attack.alpha == 0.125 and attack.steps == 10 and attack.random_start


def test_per_image_hits_are_the_rows_accuracies(sdnet, batches):
    from sdnet.attacks import attack_vs_setting

    spec = [AttackSpec("pgd", "Linf", 0.05, 3), AttackSpec("apgd-ce", "Linf", 0.05, 3)]
    rows = attack_vs_setting(sdnet, batches, [0.1, 0.5], spec, setting=lambda lam: at_lambda(sdnet, lam), craft_at=0.1, num_classes=2, per_image=True)
    images = sum(len(y) for _, y in batches)
    for row in rows:
        for score in ("clean", "white_box", "transfer"):
            hits = row[f"correct_{score}"]
            assert hits.dtype == bool and len(hits) == images and 100 * hits.mean() == pytest.approx(row[score])
    worst = [r for r in rows if r["attack"] == "worst case"]
    each = [r for r in rows if r["attack"] != "worst case"]
    for w in worst:  # an image survives the worst case only if it survives every attack
        same = [r for r in each if r["value"] == w["value"]]
        assert (w["correct_white_box"] == (same[0]["correct_white_box"] & same[1]["correct_white_box"])).all()


def test_restarts_keep_only_the_images_every_run_fails_on(sdnet, batches):
    from sdnet.attacks import RESTART_SEEDS, survivors

    spec = AttackSpec("pgd", "Linf", 0.05, 3)
    setting = lambda: at_lambda(sdnet, 0.5)  # noqa: E731
    twice = survivors(sdnet, batches, spec, setting=setting, num_classes=2, restarts=2, seed=3)
    by_hand = []
    with evaluating(sdnet):
        for i, (x, y) in enumerate(batches):
            alive = torch.ones(len(y), dtype=torch.bool)
            for r in range(2):  # restart r starts from its own seed
                x_adv = adversarial_examples(sdnet, x, y, spec.build(sdnet, 2), lam=0.5, seed=3 + i + RESTART_SEEDS * r)
                with torch.no_grad(), at_lambda(sdnet, 0.5):
                    alive &= sdnet(x_adv).argmax(1) == y
            by_hand.append(alive)
    assert (twice == torch.cat(by_hand).numpy()).all()
    once = survivors(sdnet, batches, spec, setting=setting, num_classes=2, restarts=1, seed=3)
    assert (twice <= once).all()  # a restart can only break more images


def test_transferred_examples_are_the_ones_crafted_on_the_source(sdnet, batches):
    """Crafted on the network itself at its training lambda, evaluated at each lambda: attack_vs_lambda's transfer rows."""
    from sdnet.attacks import transferred

    spec = [AttackSpec("pgd", "Linf", 0.05, 3)]
    rows = transferred(sdnet, sdnet, batches, [0.1, 0.5], spec, setting=lambda lam: at_lambda(sdnet, lam), num_classes=2)
    reference = attack_vs_lambda(sdnet, batches, [0.1, 0.5], spec, train_lam=0.1, num_classes=2)
    assert [r["robust"] for r in rows] == pytest.approx([r["transfer"] for r in reference])
