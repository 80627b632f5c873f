"""Stage ``sweep_noise``: accuracy against the test-time lambda under CIFAR-10-C noise.

    python -m sdnet.stages.noise [--profile quick]

For every seed of the profile, ResNet-18 and SDNet-18 (trained, or given as checkpoint files:
the profile's ``checkpoints``; without a ResNet-18, SDNet-18 alone) are evaluated on the clean test images and
on every (noise, severity) of ``robustness``, SDNet-18 at every test-time lambda (the grid plus
its training lambda). Then the first seed's SDNet-18 runs adaptive inference (lambda chosen from
the input, :mod:`sdnet.adaptive`) with the lambda-error line fitted on every condition (the
paper's protocol) and fitted without the noise being evaluated (held out).

The test subset is split into two disjoint class-balanced halves, each evaluated on its own, so
that a lambda (or filter strength) chosen on one half can be scored on the other
(:mod:`sdnet.protocols`). The rival: the same ResNet-18 behind a test-time Gaussian blur and a
3x3 median filter at the strengths of ``robustness.blur`` and ``robustness.median``
(:func:`sdnet.robustness.filter_sweep`).

Writes ``reports/<profile>/results/noise/``: ``sweep.csv`` (model, seed, noise, severity, lam,
top1, recon_error, sparsity, half, images), ``filters.csv`` (model, seed, filter, strength,
noise, severity, top1, half, images; without a ResNet-18, none), ``adaptive.csv`` (on the whole
subset; column ``fit``: ``all conditions`` or ``held out``), ``about.json`` (data, noise source,
lambdas, training lambda, the baseline or null, the runs loaded from files). Chapter 3 reads them.
"""

from __future__ import annotations


from sdnet.stages.common import BASELINE, SDNET, compared, released_runs, stage_command
from sdnet.strict_json import write_json
from sdnet.study import Study, batches

# The heavy imports (torch, pandas, the evaluation code) happen inside the functions, so that
# `main` checks params.yaml first and a bad value fails in a second.


def noise_conditions(study: Study, images: int) -> tuple[dict[tuple[str, int], tuple], str]:
    """Images and labels of the clean test subset and of every (noise, severity) of the profile,
    and where the noise came from: the released CIFAR-10-C files (CIFAR-10, when
    ``<data>/CIFAR-10-C`` exists) or our seeded generator with the release's severity constants.
    Every condition holds the same images, in the same order."""
    from sdnet.data.corruptions import corrupt_severity, load_cifar10c

    R = study.robustness
    test = study.datasets()[1]
    chosen = test.balanced_indices(min(images, len(test)))
    clean = test.subset(chosen)
    released = study.dataset == "cifar10" and (study.data_root / "CIFAR-10-C").is_dir()
    conditions = {("clean", 0): (clean.images, clean.labels)}
    for noise in R.noises:
        if released:
            for severity, part in load_cifar10c(study.data_root, noise, R.severities):
                part = part.subset(chosen)
                conditions[(noise, severity)] = (part.images, part.labels)
        else:
            for severity in R.severities:
                conditions[(noise, severity)] = (corrupt_severity(clean.images, noise, severity, seed=R.seed + severity), clean.labels)
    source = "released CIFAR-10-C" if released else "generated (CIFAR-10-C severities)"
    return conditions, source


def split_conditions(conditions: dict[tuple[str, int], tuple]) -> dict[int, dict[tuple[str, int], list]]:
    """Batches of every condition on each of two disjoint class-balanced halves of the images
    (:func:`sdnet.protocols.halves`): a knob chosen on one half is scored on the other."""
    from sdnet.protocols import halves

    parts = halves(conditions[("clean", 0)][1])
    return {h: {key: batches(x[idx], y[idx]) for key, (x, y) in conditions.items()} for h, idx in enumerate(parts)}


def sweep_noise(study: Study, progress: bool = True) -> dict[str, "pd.DataFrame"]:
    import pandas as pd

    from sdnet.adaptive import compare_adaptive, leave_one_noise_out
    from sdnet.protocols import HALF, IMAGES, pooled
    from sdnet.robustness import best_lambda, filter_sweep, fit_lambda_vs_error, sweep

    R = study.robustness
    conditions, source = noise_conditions(study, R.test_images)
    by_half = split_conditions(conditions)
    sizes = {h: sum(len(y) for _, y in part[("clean", 0)]) for h, part in by_half.items()}
    train_lam = study.train_lam(SDNET)
    lambdas = sorted(set(R.lambdas) | {train_lam})
    runs, baseline = compared(study)
    seeds = [s for s in study.train.seeds_for(SDNET) if baseline is None or s in study.train.seeds_for(BASELINE)]
    frames, rivals = [], []
    for seed in seeds:
        models = {run: study.load_model(run, seed=seed)[0] for run in runs}
        for h, part in by_half.items():
            frames.append(sweep(models, part, lambdas, progress=progress).assign(seed=seed, **{HALF: h, IMAGES: sizes[h]}))
            if baseline is not None:  # the rival: ResNet-18 behind a test-time filter
                filters = {"blur": R.blur, "median": R.median}
                rivals.append(filter_sweep(models[baseline], part, filters, progress=progress).assign(model=baseline, seed=seed, **{HALF: h, IMAGES: sizes[h]}))
    table = pd.concat(frames, ignore_index=True)
    table.insert(1, "seed", table.pop("seed"))

    first = seeds[0]
    mine = pooled(table[(table["model"] == SDNET) & (table["seed"] == first)], ["top1", "recon_error", "sparsity"])
    best = best_lambda(mine.drop(columns=["model", "seed", IMAGES]), train_lam=train_lam)
    model = study.load_model(SDNET, seed=first)[0]
    fits = {"all conditions": fit_lambda_vs_error(best["recon_error_train_lam"], best["best_lam"]), "held out": leave_one_noise_out(best)}
    whole = {key: batches(x, y) for key, (x, y) in conditions.items()}
    adaptive = pd.concat(
        [compare_adaptive(model, whole, fit, lambdas, train_lam, table=mine, progress=progress).assign(fit=name) for name, fit in fits.items()],
        ignore_index=True,
    )
    folder = study.results("noise")
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "sweep.csv", index=False)
    adaptive.to_csv(folder / "adaptive.csv", index=False)
    (folder / "filters.csv").unlink(missing_ok=True)  # only this run's
    if rivals:
        pd.concat(rivals, ignore_index=True).to_csv(folder / "filters.csv", index=False)
    write_json(folder / "about.json", {
        "data": study.datasets()[1].name, "test_images": sum(sizes.values()), "halves": [sizes[0], sizes[1]],
        "noise_source": source, "lambdas": lambdas, "train_lam": train_lam, "seeds": seeds,
        "filters": {"blur": R.blur, "median": R.median} if rivals else {},
        "adaptive_seed": first, "baseline": baseline, "sdnet": SDNET, **released_runs(study, runs),
    })
    return {"sweep": table, "adaptive": adaptive}


main = stage_command("Stage sweep_noise: accuracy vs test-time lambda under noise, and adaptive lambda.", sweep_noise)


if __name__ == "__main__":
    main()
