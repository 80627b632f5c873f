"""The one evaluation loop (sdnet.evaluate): sums against a hand computation, lambda handling,
probes, and the per-image worst case over several attacks (sdnet.attacks.attack_vs_lambda)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sdnet import CSCConv2d
from sdnet.attacks import WORST, AttackSpec, attack_vs_lambda
from sdnet.evaluate import Tally, at_lambda, evaluate, lambda_sweep, probe_layer
from sdnet.models import Normalize
from toy_problem import train, two_colours


def tiny_sdnet(classes: int = 2) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), CSCConv2d(3, 8, 3, padding=1, lam=0.1), nn.BatchNorm2d(8),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    return train(tiny_sdnet())


def test_tally_equals_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(7, 10, generator=g), torch.randn(5, 10, generator=g)]
    labels = [torch.randint(0, 10, (7,), generator=g), torch.randint(0, 10, (5,), generator=g)]
    tally = Tally("cpu")
    for out, y in zip(logits, labels):
        tally.add(out, y)
    result = tally.result()
    everything, y = torch.cat(logits), torch.cat(labels)
    assert result["n"] == 12
    assert result["top1"] == pytest.approx(100 * (everything.argmax(1) == y).float().mean().item())
    assert result["top5"] == pytest.approx(100 * (everything.topk(5, 1).indices == y[:, None]).any(1).float().mean().item())
    assert result["loss"] == pytest.approx(F.cross_entropy(everything, y).item(), rel=1e-6)
    with pytest.raises(ValueError, match="no batches"):
        Tally("cpu").result()


def test_probe_statistics_are_means_over_every_image(trained):
    x, y = two_colours(24, seed=3)
    batches = [(x[:10], y[:10]), (x[10:], y[10:])]
    result = evaluate(trained, batches, probe=True, bf16=False)  # float32, as the sums below
    layer, errors, zeros = trained[1], [], []
    with torch.no_grad():
        for xb, _ in batches:
            trained(xb)
            errors.append(layer.reconstruction_mse())
            zeros.append(layer.sparsity())
    assert result["recon_error"] == pytest.approx(torch.cat(errors).mean().item(), rel=1e-6)
    assert result["sparsity"] == pytest.approx(torch.cat(zeros).mean().item(), rel=1e-6)
    assert "recon_error" not in evaluate(trained, batches)  # no probe asked for


def test_evaluate_sets_lambda_only_inside_and_restores_the_mode(trained):
    seen = []
    hook = trained[1].register_forward_pre_hook(lambda module, inputs: seen.append(module.lam))
    trained.train()
    try:
        evaluate(trained, [two_colours(8)], lam=0.7)
    finally:
        hook.remove()
    assert seen == [0.7] and trained[1].lam == 0.1 and trained.training
    trained.eval()


def test_a_model_without_csc_layers_has_no_lambda_and_nothing_to_probe():
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with at_lambda(plain, 0.5) as model:
        assert model is plain
    assert probe_layer(plain, True) is None
    rows = lambda_sweep(plain, [two_colours(8)], [0.1, 0.2], probe=True)
    assert rows[0]["top1"] == rows[1]["top1"] and [r["lam"] for r in rows] == [0.1, 0.2]


def test_probe_names_a_layer(trained):
    assert probe_layer(trained, "1") is trained[1]
    with pytest.raises(ValueError, match="not a CSC layer"):
        probe_layer(trained, "2")


def test_the_worst_case_is_per_image_not_per_attack():
    model = train(tiny_sdnet(classes=3).eval())
    x, y = two_colours(24, seed=5)
    batches = [(x[:12], y[:12]), (x[12:], y[12:])]
    attacks = [AttackSpec("pgd", "Linf", 0.03, 3), AttackSpec("apgd-dlr", "Linf", 0.03, 3)]
    rows = attack_vs_lambda(model, batches, [0.1, 0.5], attacks, train_lam=0.1, num_classes=3)
    assert [(r["attack"], r["lam"]) for r in rows] == [(a, lam) for lam in (0.1, 0.5) for a in ("pgd", "apgd-dlr", WORST)]
    for lam in (0.1, 0.5):
        by = {r["attack"]: r for r in rows if r["lam"] == lam}
        for threat in ("white_box", "transfer"):
            assert by[WORST][threat] <= min(by["pgd"][threat], by["apgd-dlr"][threat])
        assert by["pgd"]["clean"] == by[WORST]["clean"] == evaluate(model, batches, lam=lam)["top1"]
    at_train = [r for r in rows if r["lam"] == 0.1]
    assert all(r["white_box"] == r["transfer"] for r in at_train)  # crafted at the training lambda: one attack


def test_attack_specs_are_checked():
    with pytest.raises(ValueError, match="kind"):
        AttackSpec("fgsm")
    with pytest.raises(ValueError, match="steps"):
        AttackSpec("pgd", steps=0)
    with pytest.raises(ValueError, match="3 classes"):
        AttackSpec("apgd-dlr").build(tiny_sdnet(), num_classes=2)
    with pytest.raises(ValueError, match="10 classes"):
        AttackSpec("autoattack").build(tiny_sdnet(), num_classes=3)
    with pytest.raises(ValueError, match="share one norm"):
        attack_vs_lambda(tiny_sdnet(), [two_colours(4)], [0.1], [AttackSpec(eps=0.1), AttackSpec(eps=0.2)], train_lam=0.1, num_classes=2)


def test_autoattack_runs_and_is_at_least_as_strong_as_pgd():
    model = train(tiny_sdnet(classes=10).eval())  # AutoAttack's APGD-T needs 10 classes; the data use 2 of them
    batches = [two_colours(12, seed=6)]
    eps = 8 / 255
    pgd_rows = attack_vs_lambda(model, batches, [0.1], [AttackSpec("pgd", "Linf", eps, 5)], train_lam=0.1, num_classes=10)
    auto_rows = attack_vs_lambda(model, batches, [0.1], [AttackSpec("autoattack", "Linf", eps)], train_lam=0.1, num_classes=10)
    for p, a in zip(pgd_rows, auto_rows):
        assert a["attack"] == "autoattack" and a["clean"] == p["clean"]
        assert a["white_box"] <= p["white_box"] + 100 / 12  # at most one image of sampling difference


def test_the_autoattack_setting_is_the_most_robust_under_the_worst_case_on_the_first_half():
    import pandas as pd

    from sdnet.stages.attack import BLUR, LAMBDA, most_robust

    rows = [(BLUR, 0, "Linf", 8 / 255, WORST, 0.0, 50.0), (LAMBDA, 0, "Linf", 8 / 255, "pgd", 0.4, 60.0),
            (LAMBDA, 0, "Linf", 8 / 255, WORST, 0.1, 1.0), (LAMBDA, 0, "Linf", 8 / 255, WORST, 0.4, 3.0), (LAMBDA, 0, "Linf", 8 / 255, WORST, 0.8, 3.0),
            (LAMBDA, 1, "Linf", 8 / 255, WORST, 1.4, 9.0), (LAMBDA, 0, "L2", 0.5, WORST, 1.4, 9.0), (LAMBDA, 0, "Linf", 2 / 255, WORST, 1.4, 9.0)]
    table = pd.DataFrame(rows, columns=["defence", "half", "norm", "eps", "attack", "value", "white_box"]).assign(seed=0)
    # the worst case (not PGD alone), the smallest of a tie, this radius and half only
    assert most_robust(table, LAMBDA, 0, "Linf", 8 / 255, half=0) == 0.4


def test_a_trained_network_is_scored_on_its_test_split_in_float32(tmp_path):
    """sdnet.evaluate.test_metrics (the evaluate@<run> stage and the training command line): the
    finished weights on the whole test split, as a direct float32 computation gives them."""
    from sdnet.checkpoint import load_model
    from sdnet.config import TrainConfig
    from sdnet.data import load_dataset
    from sdnet.evaluate import test_metrics
    from sdnet.train import train as train_run

    cfg = TrainConfig(model="sdnet18", dataset="synthetic", limit=200, width=8, epochs=1, batch_size=50, device="cpu", progress=False, bf16=True)
    train_run(cfg, tmp_path)
    scored = test_metrics(cfg, tmp_path)
    model, _ = load_model(tmp_path / "weights.pt")
    _, test = load_dataset("synthetic", limit=200)
    with torch.no_grad():
        logits = model(test.images.float() / 255)
    assert set(scored) == {"top1", "top5", "loss"}
    assert scored["top1"] == pytest.approx(100 * (logits.argmax(1) == test.labels).float().mean().item())
    assert scored["loss"] == pytest.approx(F.cross_entropy(logits, test.labels).item(), rel=1e-4)
