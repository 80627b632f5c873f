"""Stage ``attack``: robust accuracy of two test-time defences, per attack, radius and seed.

    python -m sdnet.stages.attack [--profile quick]

The defences (each a knob a defender turns after training):

- SDNet-18 at every test-time lambda of ``adversarial.lambdas`` (and its training lambda);
- the rival: the same seed's ResNet-18 behind a test-time Gaussian blur (:class:`sdnet.denoise.Filtered`)
  at every sigma of ``adversarial.blur`` (sigma 0: the bare ResNet-18).

For every seed both are trained with (or the files a profile gives), on a class-balanced subset of
the test set split into two disjoint halves (:mod:`sdnet.chapters.protocols`: a knob chosen on one
half is scored on the other), every attack of ``adversarial.attacks`` at every radius of
``linf_eps`` and ``l2_eps``, two threats (:mod:`sdnet.attacks`): *transfer*, the examples crafted on
the network as trained (SDNet-18 at its training lambda, the bare ResNet-18: the paper's protocol),
and *white-box* (gradients taken through the knob's value). SDNet-18 is also scored on the
examples crafted on ResNet-18 (``cross``: a transfer check that must sit above white-box). Every
row keeps which images it got right (``hits.npz``), so the chapter can resample the images.

The checks a gradient-masking defence would fail (first seed, the first ``check_images`` images,
half from each half), at every other value of each knob: white-box PGD against PGD with
``check_steps`` steps and ``check_restarts`` random restarts at ``check_linf_eps`` and
``check_l2_eps`` (radii where white-box accuracy is well above zero); white-box PGD over
``sweep_linf_eps`` (accuracy must fall to zero); with ``autoattack``, AutoAttack (standard) at the
smallest L-inf radius on the check images of the second half, at the training settings and at the
settings our worst case leaves most robust on the first half.

The work is done in parts (a seed, a defence, a radius; a check), each kept in
``results/attack-parts/`` with a fingerprint of what decides it (the networks' weights, the
images, the attacks and knob values, this stage's code): an interrupted run, or one on another
machine with the folder committed, resumes from the parts already done and recomputes a part
only when its fingerprint changed; a finished run leaves only its own parts there.

Writes ``reports/<profile>/results/attacks/``: ``attacks.csv`` (model, defence, seed, value, norm,
eps, attack, half, images, clean, white_box, transfer, cross; the per-image worst case over the
attacks as attack ``worst case``), ``checks.csv`` (check, defence, value, norm, eps, attack,
steps, restarts, half, images, robust), ``autoattack.csv`` (defence, value, chosen, images,
robust), ``hits.npz`` (per row of each, which images were right; :mod:`sdnet.hits`) and
``about.json`` (with ``baseline`` null when no ResNet-18 was attacked). Chapter 4 reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sdnet.stages.common import SDNET, compared, save_results, stage_command
from sdnet.study import Study, batches

if TYPE_CHECKING:
    import pandas as pd

    from sdnet.attacks import AttackSpec

# The heavy imports (torch, pandas, torchattacks) happen inside the functions, so that `main`
# checks params.yaml first and a bad value fails in a second.

BATCH = 128
LAMBDA, BLUR = "SDNet-18", "ResNet-18 + blur"  # the two defences (column `defence`)
PARTS = "attack-parts"  # results/<PARTS>/: the finished parts of an unfinished run


def specs(study: Study, norm: str, eps: float) -> list:
    """The profile's attacks (:class:`sdnet.attacks.AttackSpec`) at one radius."""
    from sdnet.attacks import AttackSpec

    A = study.adversarial
    return [AttackSpec(kind, norm, eps, A.steps, restarts=A.restarts, alpha=A.step_size_fraction * eps) for kind in A.attacks]


def pgd_spec(study: Study, norm: str, eps: float, steps: int) -> "AttackSpec":
    from sdnet.attacks import AttackSpec

    return AttackSpec("pgd", norm, eps, steps, alpha=study.adversarial.step_size_fraction * eps)


class Parts:
    """The stage's finished parts in ``folder``, one text file each, ``<key>.json``: the
    fingerprint of what decided it, and its rows, per-image columns packed eight images to a byte
    and base64-encoded (the repository holds no other binary results than a stage's hits.npz).
    :meth:`get` returns a part's rows, computing them only when no part of that key and
    fingerprint is there; a part is written whole (to a temporary file, then renamed) or not at all."""

    def __init__(self, folder: Path, common: dict) -> None:
        self.folder, self.common, self.used = folder, common, set()
        folder.mkdir(parents=True, exist_ok=True)

    def prune(self) -> None:
        """Remove every file of the folder this run did not use (parts of older settings, unfinished writes)."""
        for path in self.folder.iterdir():
            if path.name not in self.used:
                path.unlink()

    def fingerprint(self, spec: dict) -> str:
        text = json.dumps({**self.common, **spec}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def get(self, key: str, spec: dict, compute: Callable[[], list[dict]]) -> list[dict]:
        import base64
        import os

        import numpy as np

        path = self.folder / f"{key}.json"
        self.used.add(path.name)
        fingerprint = self.fingerprint(spec)
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("fingerprint") == fingerprint:
                return [{**row["scalars"], **{c: np.unpackbits(np.frombuffer(base64.b64decode(h["bits"]), dtype=np.uint8), count=h["n"]).astype(bool)
                                                for c, h in row["hits"].items()}} for row in stored["rows"]]
        rows = compute()
        encoded = []
        for row in rows:
            hits = {c: v for c, v in row.items() if isinstance(v, np.ndarray)}
            scalars = {c: (v.item() if isinstance(v, np.generic) else v) for c, v in row.items() if c not in hits}
            encoded.append({"scalars": scalars, "hits": {c: {"n": len(v), "bits": base64.b64encode(np.packbits(v.astype(bool)).tobytes()).decode()}
                                                         for c, v in hits.items()}})
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "spec": spec, "rows": encoded}, default=str) + "\n")
        os.replace(tmp, path)
        return rows


def network_fingerprint(model) -> str:
    """A hash of a network's parameters and buffers."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def stage_code() -> str:
    """:func:`sdnet.provenance.code_fingerprint` of this stage's import closure."""
    from sdnet.provenance import PACKAGE_ROOT, code_dependencies, code_fingerprint

    return code_fingerprint(code_dependencies(PACKAGE_ROOT, modules=["sdnet.stages.attack"]), PACKAGE_ROOT)


def attack(study: Study, progress: bool = True) -> dict[str, "pd.DataFrame"]:
    import numpy as np
    import pandas as pd

    from sdnet.attacks import attack_vs_setting, survivors, transferred
    from sdnet.chapters.protocols import halves
    from sdnet.denoise import Filtered, at_strength
    from sdnet.evaluate import at_lambda
    from sdnet.provenance import data_fingerprint
    from sdnet.stages.common import BASELINE

    A = study.adversarial
    test = study.test_set(A.test_images)
    split = halves(test.labels)
    in_half1 = np.zeros(len(test.labels), dtype=bool)
    in_half1[split[1].numpy()] = True
    parts = {h: batches(test.images[idx], test.labels[idx], BATCH) for h, idx in enumerate(split)}
    per_half = A.check_images // 2
    checked = {h: batches(test.images[idx[:per_half]], test.labels[idx[:per_half]], BATCH) for h, idx in enumerate(split)}
    runs, baseline = compared(study)
    seeds = [s for s in study.train.seeds_for(SDNET) if baseline is None or s in study.train.seeds_for(BASELINE)]
    radii = [("Linf", e) for e in A.linf_eps] + [("L2", e) for e in A.l2_eps]
    options = dict(num_classes=len(test.classes), seed=A.seed, progress=progress)
    store = Parts(study.results(PARTS), {"code": stage_code(), "images": data_fingerprint(test), "seed": A.seed, "batch": BATCH})

    rows, check_rows, train_lams = [], [], {}
    for seed in seeds:
        sdnet = study.load_model(SDNET, seed=seed)[0].float()
        train_lam = train_lams[seed] = study.train_lam(SDNET, seed=seed)
        lambdas = sorted(set(A.lambdas) | {train_lam})
        resnet = study.load_model(baseline, seed=seed)[0].float() if baseline else None
        blurred = Filtered(resnet, "blur") if resnet is not None else None
        strengths = [0.0, *sorted(map(float, A.blur))]
        nets = {"sdnet": network_fingerprint(sdnet), **({"resnet": network_fingerprint(resnet)} if resnet is not None else {})}
        knobs = {LAMBDA: (SDNET, lambdas)} | ({BLUR: (baseline, strengths)} if blurred is not None else {})

        def at_value(defence: str, value: float):
            return at_lambda(sdnet, value) if defence == LAMBDA else at_strength(blurred, value)

        for norm, eps in radii:
            attacks = specs(study, norm, eps)
            for defence, (model_name, values) in knobs.items():
                spec = {"part": "main", "defence": defence, "nets": nets, "values": values, "norm": norm, "eps": eps,
                        "attacks": [dataclasses.asdict(a) for a in attacks], "train_lam": train_lam}

                def compute(defence=defence, values=values, attacks=attacks):
                    out = []
                    for h, part in parts.items():
                        if defence == LAMBDA:
                            found = attack_vs_setting(sdnet, part, values, attacks, setting=lambda v: at_lambda(sdnet, v), craft_at=train_lam,
                                                      per_image=True, **options)
                            if resnet is not None:  # the transfer check: crafted on ResNet-18
                                cross = transferred(resnet, sdnet, part, values, attacks, setting=lambda v: at_lambda(sdnet, v),
                                                    num_classes=options["num_classes"], seed=options["seed"])
                                for r, c in zip(found, cross):
                                    r.update(cross=c["robust"], correct_cross=c["correct"])
                        else:  # the blur's transfer examples are crafted on the bare ResNet-18: its cross is its transfer
                            found = attack_vs_setting(blurred, part, values, attacks, setting=lambda v: at_strength(blurred, v), craft_at=0.0,
                                                      per_image=True, **options)
                            for r in found:
                                r.update(cross=r["transfer"], correct_cross=r["correct_transfer"])
                        out += [{"half": h, "images": len(found[0]["correct_clean"]), **r} for r in found]
                    return out

                key = f"seed{seed}-{'lambda' if defence == LAMBDA else 'blur'}-{norm}-{eps:.6f}"
                for r in store.get(key, spec, compute):
                    rows.append({"model": model_name, "defence": defence, "seed": seed, "norm": norm, "eps": eps, **r})

        if seed != seeds[0]:
            continue
        # The checks, on the first seed: every other value of each knob, and the setting it was trained
        # at (the reference a stronger attack's extra success is compared with).
        check_values = {d: sorted(set(values[::2]) | {train_lam if d == LAMBDA else 0.0}) for d, (_, values) in knobs.items()}

        def check(kind: str, norm: str, eps: float, steps: int, restarts: int):
            spec = {"part": kind, "nets": nets, "values": check_values, "norm": norm, "eps": eps, "steps": steps, "restarts": restarts,
                    "images": A.check_images, "alpha": A.step_size_fraction}

            def compute():
                out = []
                for defence, values in check_values.items():
                    for value in values:
                        model = sdnet if defence == LAMBDA else blurred
                        for h, part in checked.items():
                            alive = survivors(model, part, pgd_spec(study, norm, eps, steps), setting=lambda: at_value(defence, value),
                                              num_classes=len(test.classes), restarts=restarts, seed=A.seed)
                            out.append({"check": kind, "defence": defence, "value": value, "attack": "pgd", "steps": steps, "restarts": restarts,
                                        "half": h, "images": len(alive), "robust": 100.0 * alive.mean(), "correct": alive})
                return out

            key = f"check-{kind}-{norm}-{eps:.6f}-{steps}x{restarts}"
            return [{"norm": norm, "eps": eps, **r} for r in store.get(key, spec, compute)]

        for norm, eps in [("Linf", e) for e in A.check_linf_eps] + [("L2", e) for e in A.check_l2_eps]:
            check_rows += check("stronger", norm, eps, A.steps, 1) + check("stronger", norm, eps, A.check_steps, A.check_restarts)
        for eps in A.sweep_linf_eps:
            check_rows += check("radius", "Linf", eps, A.steps, 1)

    table = pd.DataFrame(rows)
    checks = pd.DataFrame(check_rows)
    auto = autoattack(study, table, store, seeds[0], split, per_half, test, options) if A.autoattack and A.linf_eps else None

    store.prune()
    save_results(study, "attacks", {"attacks": table, "checks": checks, "autoattack": auto}, {
        "data": test.name, "test_images": len(test), "halves": [len(idx) for idx in split], "seeds": seeds,
        "train_lam": train_lams, "lambdas": sorted(set(A.lambdas) | set(train_lams.values())), "blur": sorted(map(float, A.blur)) if baseline else [],
        "attacks": [dataclasses.asdict(s) for s in specs(study, *radii[0])], "baseline": baseline, "sdnet": SDNET,
        "check_images": sum(len(idx[:per_half]) for idx in split),
        "check_steps": A.check_steps, "check_restarts": A.check_restarts, "steps": A.steps,
    }, runs, in_half1=in_half1)
    return {"attacks": table, "checks": checks}


def most_robust(table: "pd.DataFrame", defence: str, seed: int, norm: str, eps: float, half: int) -> float:
    """The knob value whose white-box robust accuracy under the per-image worst case of the
    profile's attacks is highest at (``norm``, ``eps``) on ``half`` of the images; the mildest on a tie."""
    from sdnet.attacks import WORST

    rows = table[(table["defence"] == defence) & (table["seed"] == seed) & (table["norm"] == norm)
                 & ((table["eps"] - eps).abs() < 1e-9) & (table["half"] == half)]
    worst = rows[rows["attack"] == WORST] if (rows["attack"] == WORST).any() else rows
    return float(worst.sort_values(["white_box", "value"], ascending=[False, True], kind="stable").iloc[0]["value"])


def autoattack(study: Study, table, store: Parts, seed: int, split, per_half: int, test, options: dict) -> "pd.DataFrame":
    """AutoAttack (standard) at the smallest L-inf radius of the profile, white-box, on the check
    images of the second half: each defence at its training setting (SDNet-18 at its training
    lambda, the bare ResNet-18) and at the value our worst case leaves most robust on the first half."""
    import pandas as pd

    from sdnet.attacks import AttackSpec, survivors
    from sdnet.denoise import Filtered, at_strength
    from sdnet.evaluate import at_lambda
    from sdnet.stages.common import BASELINE

    eps = min(study.adversarial.linf_eps)
    idx = split[1][:per_half]
    data = batches(test.images[idx], test.labels[idx], BATCH)
    sdnet = study.load_model(SDNET, seed=seed)[0].float()
    train_lam = study.train_lam(SDNET, seed=seed)
    models = {LAMBDA: (sdnet, train_lam, lambda v: at_lambda(sdnet, v))}
    if study.available(BASELINE) and (table["defence"] == BLUR).any():
        blurred = Filtered(study.load_model(BASELINE, seed=seed)[0].float(), "blur")
        models[BLUR] = (blurred, 0.0, lambda v: at_strength(blurred, v))
    spec = AttackSpec("autoattack", "Linf", eps)
    rows = []
    for defence, (model, trained_at, setting) in models.items():
        chosen = most_robust(table, defence, seed, "Linf", eps, half=0)
        for value, how in [(trained_at, "as trained"), (chosen, "most robust on the first half")][: 1 if chosen == trained_at else 2]:
            def compute(model=model, value=value, setting=setting):
                alive = survivors(model, data, spec, setting=lambda: setting(value), num_classes=options["num_classes"], seed=options["seed"])
                return [{"robust": 100.0 * alive.mean(), "images": len(alive), "correct": alive}]

            part = {"part": "autoattack", "defence": defence, "value": value, "eps": eps, "images": len(idx), "seed_net": seed,
                    "net": network_fingerprint(model)}
            key = f"autoattack-{'lambda' if defence == LAMBDA else 'blur'}-{value:g}"
            for r in store.get(key, part, compute):
                rows.append({"defence": defence, "value": value, "chosen": how, "norm": "Linf", "eps": eps, "half": 1, **r})
    return pd.DataFrame(rows)


main = stage_command("Stage attack: robust accuracy of SDNet-18's lambda and ResNet-18's blur, per attack, radius and seed.", attack)


if __name__ == "__main__":
    main()
