"""Stage ``attack``: robust accuracy against the test-time lambda, per attack and radius.

    python -m sdnet.stages.attack [--profile quick]

The first seed's ResNet-18 and SDNet-18 (trained, or given as checkpoint files: the profile's
``checkpoints``; without a ResNet-18, SDNet-18 alone) are attacked on a class-balanced subset of the test set
by every attack of ``adversarial.attacks`` at every L-inf and L2 radius, SDNet-18 at every
test-time lambda (white-box and transfer from its training lambda; :mod:`sdnet.attacks`). A
gradient-masking check runs the first attack again with twice the steps (and restarts) at the
largest L-inf radius (the largest L2 one without L-inf radii): a real defence cannot gain from a
stronger attack.

The images are attacked in two disjoint class-balanced halves (:mod:`sdnet.chapters.protocols`), so that
a lambda chosen on one half can be scored on the other. The rival (with a ResNet-18 and
``adversarial.blur``): the same ResNet-18 behind a test-time Gaussian blur
(:class:`sdnet.denoise.Filtered`), attacked like SDNet-18's lambda: examples crafted on the bare
ResNet-18 (the paper's protocol, transfer) and through the blur (white-box).

Writes ``reports/<profile>/results/attacks/``: ``attacks.csv`` (model, norm, eps, attack, lam,
clean, white_box, transfer, half, images; the per-image worst case over the attacks as attack
``worst case``; ResNet-18 rows have no lambda), ``filters.csv`` (the rival: model, filter, norm,
eps, attack, strength, clean, white_box, transfer, half, images), ``stronger.csv`` (the check: lam, steps, restarts, white_box) and
``about.json`` (with ``baseline`` null when no ResNet-18 was attacked). With ``adversarial.autoattack``,
also ``autoattack.csv``: AutoAttack (standard) at L-inf 8/255 on ResNet-18 and on SDNet-18 at the
training lambda and at the lambda the worst case of the profile's attacks leaves most robust there
(:func:`most_robust_lambda`). Chapter 4 reads them.
"""

from __future__ import annotations

import dataclasses

from sdnet.stages.common import SDNET, compared, save_results, stage_command
from sdnet.study import Study, batches

# The heavy imports (torch, pandas, torchattacks) happen inside the functions, so that `main`
# checks params.yaml first and a bad value fails in a second.

BATCH = 128
PAPER_LINF = 8 / 255  # the paper's L-inf radius: where AutoAttack runs and the best lambda is chosen


def specs(study: Study, norm: str, eps: float, stronger: bool = False) -> list:
    """The profile's attacks (:class:`sdnet.attacks.AttackSpec`) at one radius (``stronger``:
    twice the steps and restarts)."""
    from sdnet.attacks import AttackSpec

    A = study.adversarial
    factor = 2 if stronger else 1
    return [
        AttackSpec(kind, norm, eps, A.steps * factor, restarts=A.restarts * factor, alpha=A.step_size_fraction * eps)
        for kind in A.attacks
    ]


def most_robust_lambda(table: "pd.DataFrame", norm: str, eps: float) -> float:
    """SDNet-18's test-time lambda with the most white-box robust accuracy under the per-image
    worst case of the profile's attacks at (``norm``, ``eps``); the smallest on a tie."""
    from sdnet.attacks import WORST

    rows = table[(table["model"] == SDNET) & (table["norm"] == norm) & ((table["eps"] - eps).abs() < 1e-6)]
    worst = rows[rows["attack"] == WORST] if (rows["attack"] == WORST).any() else rows
    best = worst.sort_values(["white_box", "lam"], ascending=[False, True]).iloc[0]
    return float(best["lam"])


def autoattack(study: Study, runs: list[str], data, lambdas: list[float], options: dict) -> "pd.DataFrame":
    """AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) at L-inf 8/255 on each of ``runs``,
    SDNet-18 at ``lambdas``; rows as ``attacks.csv``'s."""
    import pandas as pd

    from sdnet.attacks import AttackSpec, attack_vs_lambda

    seed = study.train.seeds_for(SDNET)[0]
    rows = []
    for run in runs:
        model = study.load_model(run, seed=seed)[0].float()
        for row in attack_vs_lambda(model, data, lambdas, [AttackSpec("autoattack", "Linf", PAPER_LINF)], **options):
            rows.append({"model": run, "norm": "Linf", "eps": PAPER_LINF, **row})
    return pd.DataFrame(rows)


def attack(study: Study, progress: bool = True) -> dict[str, "pd.DataFrame"]:
    import pandas as pd

    from sdnet.attacks import attack_vs_lambda, attack_vs_setting
    from sdnet.denoise import Filtered, at_strength
    from sdnet.chapters.protocols import HALF, IMAGES, halves, pooled

    A = study.adversarial
    test = study.test_set(A.test_images)
    data = batches(test.images, test.labels, BATCH)
    parts = {h: (batches(test.images[idx], test.labels[idx], BATCH), len(idx)) for h, idx in enumerate(halves(test.labels))}
    seed = study.train.seeds_for(SDNET)[0]
    train_lam = study.train_lam(SDNET, seed=seed)
    lambdas = sorted(set(A.lambdas) | {train_lam})
    radii = [("Linf", e) for e in A.linf_eps] + [("L2", e) for e in A.l2_eps]
    options = dict(num_classes=len(test.classes), seed=A.seed, progress=progress)
    runs, baseline = compared(study)
    rows, rival = [], []
    for run in runs:
        model = study.load_model(run, seed=seed)[0].float()
        for norm, eps in radii:
            for h, (part, size) in parts.items():
                for row in attack_vs_lambda(model, part, lambdas, specs(study, norm, eps), train_lam=train_lam, **options):
                    rows.append({"model": run, "norm": norm, "eps": eps, **row, HALF: h, IMAGES: size})
        if run == baseline and A.blur:  # the rival: the same ResNet-18 behind a blur the attacker may not know
            blurred = Filtered(model, "blur")
            strengths = [0.0, *sorted(map(float, A.blur))]
            for norm, eps in radii:
                for h, (part, size) in parts.items():
                    for row in attack_vs_setting(blurred, part, strengths, specs(study, norm, eps), setting=lambda s: at_strength(blurred, s), craft_at=0.0, **options):
                        rival.append({"model": run, "filter": "blur", "norm": norm, "eps": eps, "attack": row.pop("attack"),
                                      "strength": row.pop("value"), **row, HALF: h, IMAGES: size})
    table = pd.DataFrame(rows)
    scores = ["clean", "white_box", "transfer"]

    norm, eps = ("Linf", max(A.linf_eps)) if A.linf_eps else ("L2", max(A.l2_eps))
    first, twice = specs(study, norm, eps)[0], specs(study, norm, eps, stronger=True)[0]
    model = study.load_model(SDNET, seed=seed)[0].float()
    checks = []
    for spec in (first, twice):
        for row in attack_vs_lambda(model, data, lambdas, [spec], train_lam=train_lam, **options):
            checks.append({"norm": norm, "eps": eps, "attack": spec.kind, "steps": spec.steps, "restarts": spec.restarts,
                           "lam": row["lam"], "white_box": row["white_box"]})
    stronger = pd.DataFrame(checks)
    auto_lambdas = sorted({train_lam, most_robust_lambda(pooled(table, scores), "Linf", PAPER_LINF)}) if A.autoattack else []

    save_results(study, "attacks", {
        "attacks": table, "stronger": stronger, "filters": pd.DataFrame(rival) if rival else None,
        "autoattack": autoattack(study, runs, data, auto_lambdas, dict(train_lam=train_lam, **options)) if auto_lambdas else None,
    }, {
        "data": test.name, "test_images": len(test), "halves": [size for _, size in parts.values()], "seed": seed,
        "train_lam": train_lam, "lambdas": lambdas, "blur": [float(b) for b in A.blur] if rival else [],
        "attacks": [dataclasses.asdict(s) for s in specs(study, *radii[0])], "baseline": baseline, "sdnet": SDNET,
        "autoattack_lambdas": auto_lambdas,
    }, runs)
    return {"attacks": table, "stronger": stronger}


main = stage_command("Stage attack: robust accuracy vs test-time lambda, per attack and radius.", attack)


if __name__ == "__main__":
    main()
