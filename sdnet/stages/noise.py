"""Stage ``sweep_noise``: accuracy against the test-time lambda under CIFAR-10-C noise.

    python -m sdnet.stages.noise [--profile quick]

For every seed of the profile, ResNet-18 and SDNet-18 (trained, or given as checkpoint files:
the profile's ``checkpoints``; without a ResNet-18, SDNet-18 alone) are evaluated on the clean test images and
on every (noise, severity) of ``robustness``, SDNet-18 at every test-time lambda (the grid plus
its training lambda). Then the first seed's SDNet-18 runs adaptive inference (lambda chosen from
the input, :mod:`sdnet.adaptive`) with the lambda-error line fitted on every condition (the
paper's protocol) and fitted without the noise being evaluated (held out).

Writes ``reports/<profile>/results/noise/``: ``sweep.csv`` (model, seed, noise, severity, lam,
top1, recon_error, sparsity), ``adaptive.csv`` (column ``fit``: ``all conditions`` or
``held out``), ``about.json`` (data, noise source, lambdas, training lambda, the baseline or null,
the runs loaded from files). Chapter 3 reads them.
"""

from __future__ import annotations


from sdnet.stages.common import BASELINE, SDNET, compared, released_runs, stage_command
from sdnet.strict_json import write_json
from sdnet.study import Study, batches

# The heavy imports (torch, pandas, the evaluation code) happen inside the functions, so that
# `main` checks params.yaml first and a bad value fails in a second.


def noise_conditions(study: Study, images: int) -> tuple[dict[tuple[str, int], list], str]:
    """Batches of the clean test subset and of every (noise, severity) of the profile, and where
    the noise came from: the released CIFAR-10-C files (CIFAR-10, when ``<data>/CIFAR-10-C``
    exists) or our seeded generator with the release's severity constants."""
    from sdnet.data.corruptions import corrupt_severity, load_cifar10c

    R = study.robustness
    test = study.datasets()[1]
    chosen = test.balanced_indices(min(images, len(test)))
    clean = test.subset(chosen)
    released = study.dataset == "cifar10" and (study.data_root / "CIFAR-10-C").is_dir()
    conditions = {("clean", 0): batches(clean.images, clean.labels)}
    for noise in R.noises:
        if released:
            for severity, part in load_cifar10c(study.data_root, noise, R.severities):
                part = part.subset(chosen)
                conditions[(noise, severity)] = batches(part.images, part.labels)
        else:
            for severity in R.severities:
                noisy = corrupt_severity(clean.images, noise, severity, seed=R.seed + severity)
                conditions[(noise, severity)] = batches(noisy, clean.labels)
    source = "released CIFAR-10-C" if released else "generated (CIFAR-10-C severities)"
    return conditions, source


def sweep_noise(study: Study, progress: bool = True) -> dict[str, "pd.DataFrame"]:
    import pandas as pd

    from sdnet.adaptive import compare_adaptive, leave_one_noise_out
    from sdnet.robustness import best_lambda, fit_lambda_vs_error, sweep

    R = study.robustness
    conditions, source = noise_conditions(study, R.test_images)
    train_lam = study.train_lam(SDNET)
    lambdas = sorted(set(R.lambdas) | {train_lam})
    runs, baseline = compared(study)
    seeds = [s for s in study.train.seeds_for(SDNET) if baseline is None or s in study.train.seeds_for(BASELINE)]
    frames = []
    for seed in seeds:
        models = {run: study.load_model(run, seed=seed)[0] for run in runs}
        frames.append(sweep(models, conditions, lambdas, progress=progress).assign(seed=seed))
    table = pd.concat(frames, ignore_index=True)
    table.insert(1, "seed", table.pop("seed"))

    first = seeds[0]
    mine = table[(table["model"] == SDNET) & (table["seed"] == first)]
    best = best_lambda(mine.drop(columns=["model", "seed"]), train_lam=train_lam)
    model = study.load_model(SDNET, seed=first)[0]
    fits = {"all conditions": fit_lambda_vs_error(best["recon_error_train_lam"], best["best_lam"]), "held out": leave_one_noise_out(best)}
    adaptive = pd.concat(
        [compare_adaptive(model, conditions, fit, lambdas, train_lam, table=mine, progress=progress).assign(fit=name) for name, fit in fits.items()],
        ignore_index=True,
    )
    folder = study.results("noise")
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "sweep.csv", index=False)
    adaptive.to_csv(folder / "adaptive.csv", index=False)
    write_json(folder / "about.json", {
        "data": study.datasets()[1].name, "test_images": sum(len(y) for _, y in conditions[("clean", 0)]),
        "noise_source": source, "lambdas": lambdas, "train_lam": train_lam, "seeds": seeds,
        "adaptive_seed": first, "baseline": baseline, "sdnet": SDNET, **released_runs(study, runs),
    })
    return {"sweep": table, "adaptive": adaptive}


main = stage_command("Stage sweep_noise: accuracy vs test-time lambda under noise, and adaptive lambda.", sweep_noise)


if __name__ == "__main__":
    main()
