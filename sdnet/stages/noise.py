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
(:mod:`sdnet.chapters.protocols`). The rival: the same ResNet-18 behind a test-time Gaussian blur and a
3x3 median filter at the strengths of ``robustness.blur`` and ``robustness.median``
(:func:`sdnet.robustness.filter_sweep`).

The mechanism, on the first seed's SDNet-18: what its stem makes of noisy images against the
same images clean at each lambda and number of stem steps (:func:`sdnet.robustness.stem_denoising`,
on :data:`STEM_IMAGES` images, the middle and highest severities), and the accuracy with the stem
run for :data:`STEM_STEPS` steps at test time (trained with 2) on the clean images and the middle
severity, at every other lambda of the grid.

Writes ``reports/<profile>/results/noise/``: ``sweep.csv`` (model, seed, noise, severity, lam,
top1, recon_error, sparsity, half, images), ``filters.csv`` (model, seed, filter, strength,
noise, severity, top1, half, images; without a ResNet-18, none), ``adaptive.csv`` (on the whole
subset; column ``fit``: ``all conditions`` or ``held out``), ``steps.csv`` (as sweep.csv, one
seed, with the stem's ``steps``), ``stem.csv`` (per noise, severity, lambda and steps: mean and
standard error over the images of each measure of :data:`sdnet.robustness.STEM_MEASURES`, and of
its change from the training lambda, paired per image), ``hits.npz`` (which images every row of
the csv tables got right: :mod:`sdnet.hits`), ``about.json`` (data, noise source, lambdas,
training lambda, the baseline or null, the runs loaded from files). Chapter 3 reads them.
"""

from __future__ import annotations


from sdnet.stages.common import BASELINE, SDNET, compared, save_results, stage_command
from sdnet.study import Study, batches

# The heavy imports (torch, pandas, the evaluation code) happen inside the functions, so that
# `main` checks params.yaml first and a bad value fails in a second.

# The mechanism's measurement: stem steps at test time (the first is the trained number) and the
# number of images the stem's reconstructions are measured on (a standard error of about 0.01 on
# a scaled error; the stem alone costs little, so every image-wise measure has its interval).
STEM_STEPS = (2, 5, 20)
STEM_IMAGES = 256
# The accuracy with more stem steps is measured on at most this many images of each half (20 steps
# cost 3x a forward pass of 2 steps); it is compared with 2 steps on the same images, paired.
STEPS_IMAGES_PER_HALF = 250


def split_conditions(conditions: dict[tuple[str, int], tuple], per_half: int | None = None) -> dict[int, dict[tuple[str, int], list]]:
    """Batches of every condition on each of two disjoint class-balanced halves of the images
    (:func:`sdnet.chapters.protocols.halves`): a knob chosen on one half is scored on the other. With
    ``per_half``, only the first images of each half (in the subset's order)."""
    from sdnet.chapters.protocols import halves

    parts = [idx[:per_half] for idx in halves(conditions[("clean", 0)][1])]
    return {h: {key: batches(x[idx], y[idx]) for key, (x, y) in conditions.items()} for h, idx in enumerate(parts)}


def sweep_noise(study: Study, progress: bool = True) -> dict[str, "pd.DataFrame"]:
    import pandas as pd

    from sdnet.adaptive import compare_adaptive, leave_one_noise_out
    from sdnet.chapters.protocols import HALF, IMAGES, pooled
    from sdnet.robustness import best_lambda_table, filter_sweep, fit_lambda_vs_error, sweep

    R = study.robustness
    conditions, source = study.noise_conditions(R.test_images)
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
            frames.append(sweep(models, part, lambdas, progress=progress, per_image=True).assign(seed=seed, **{HALF: h, IMAGES: sizes[h]}))
            if baseline is not None:  # the rival: ResNet-18 behind a test-time filter
                filters = {"blur": R.blur, "median": R.median}
                rivals.append(filter_sweep(models[baseline], part, filters, progress=progress, per_image=True)
                              .assign(model=baseline, seed=seed, **{HALF: h, IMAGES: sizes[h]}))
    table = pd.concat(frames, ignore_index=True)
    table.insert(1, "seed", table.pop("seed"))

    first = seeds[0]
    mine = pooled(table[(table["model"] == SDNET) & (table["seed"] == first)].drop(columns="correct"), ["top1", "recon_error", "sparsity"])
    best = best_lambda_table(mine.drop(columns=["model", "seed", IMAGES]), train_lam=train_lam)
    model = study.load_model(SDNET, seed=first)[0]
    fits = {"all conditions": fit_lambda_vs_error(best["recon_error_train_lam"], best["best_lam"]), "held out": leave_one_noise_out(best)}
    whole = {key: batches(x, y) for key, (x, y) in conditions.items()}
    adaptive = pd.concat(
        [compare_adaptive(model, whole, fit, lambdas, train_lam, table=mine, progress=progress).assign(fit=name) for name, fit in fits.items()],
        ignore_index=True,
    )
    steps, stem = stem_mechanism(study, model, conditions, lambdas, train_lam, progress)

    tables = {"sweep": table, "adaptive": adaptive, "steps": steps.assign(seed=first), "filters": pd.concat(rivals, ignore_index=True) if rivals else None}
    save_results(study, "noise", {**tables, "stem": stem}, {
        "data": study.datasets()[1].name, "test_images": sum(sizes.values()), "halves": [sizes[0], sizes[1]],
        "noise_source": source, "lambdas": lambdas, "train_lam": train_lam, "seeds": seeds,
        "filters": {"blur": R.blur, "median": R.median} if rivals else {},
        "adaptive_seed": first, "baseline": baseline, "sdnet": SDNET, "stem_steps": list(STEM_STEPS), "stem_images": int(stem_images(conditions).numel()),
    }, runs, in_half1=second_half_mask(conditions))
    return {name: frame for name, frame in tables.items() if frame is not None}


def stem_images(conditions: dict[tuple[str, int], tuple]) -> "torch.Tensor":
    """Indices of the :data:`STEM_IMAGES` images (spread evenly over the subset) the stem is measured on."""
    import torch

    n = len(conditions[("clean", 0)][1])
    return torch.linspace(0, n - 1, min(STEM_IMAGES, n)).round().long().unique()


def stem_mechanism(study: Study, model, conditions, lambdas, train_lam, progress: bool):
    """The stem's reconstructions against the clean images (:func:`sdnet.robustness.stem_denoising`,
    summarised per condition) and the accuracy with more stem steps at test time."""
    import pandas as pd

    from sdnet.chapters.protocols import HALF, IMAGES
    from sdnet.robustness import STEM_MEASURES, stem_denoising, stem_steps, sweep

    R = study.robustness
    middle = sorted(R.severities)[len(R.severities) // 2]
    # Accuracy with more stem steps: the middle severity, every other lambda of the grid and the
    # first images of each half (20 steps cost 3x a forward pass of 2 steps).
    keys = [("clean", 0)] + [(n, middle) for n in R.noises]
    grid = sorted(set(lambdas[::2]) | {train_lam})
    halves_cut = split_conditions({k: conditions[k] for k in keys}, per_half=STEPS_IMAGES_PER_HALF)
    frames = []
    for n_steps in STEM_STEPS[1:]:  # the trained number of steps is the main sweep
        with stem_steps(model, n_steps):
            for h, part in halves_cut.items():
                count = sum(len(y) for _, y in part[("clean", 0)])
                frames.append(sweep({SDNET: model}, part, grid, progress=progress, per_image=True)
                              .assign(steps=n_steps, **{HALF: h, IMAGES: count}))
    steps = pd.concat(frames, ignore_index=True)
    keys = [(n, s) for n in R.noises for s in sorted({middle, max(R.severities)})]  # the stem alone: cheap

    chosen = stem_images(conditions)
    clean = conditions[("clean", 0)][0][chosen].float() / 255
    rows = []
    for noise, severity in keys:
        noisy = conditions[(noise, severity)][0][chosen].float() / 255
        per_image = stem_denoising(model, clean, noisy, lambdas, STEM_STEPS)
        at_train = per_image[per_image["lam"] == train_lam].set_index(["steps", "image"])
        for (n_steps, lam), part in per_image.groupby(["steps", "lam"]):
            row = {"noise": noise, "severity": severity, "lam": lam, "steps": n_steps, "images": len(part)}
            base = at_train.loc[n_steps].loc[part["image"]]
            for measure in STEM_MEASURES:
                row.update({f"{measure}": part[measure].mean(), f"{measure}_sem": part[measure].sem()})
                if measure != "gain_over_input":  # its change is minus that of to_clean
                    change = pd.Series(part[measure].to_numpy() - base[measure].to_numpy())
                    row.update({f"{measure}_vs_train": change.mean(), f"{measure}_vs_train_sem": change.sem()})
            rows.append(row)
    return steps, pd.DataFrame(rows)


def second_half_mask(conditions: dict[tuple[str, int], tuple]) -> "np.ndarray":
    """Which images of the subset are in the second half (:func:`split_conditions`): a half's rows
    of hits hold its images in the subset's order, the adaptive rows all images."""
    import numpy as np

    from sdnet.chapters.protocols import halves

    labels = conditions[("clean", 0)][1]
    mask = np.zeros(len(labels), dtype=bool)
    mask[halves(labels)[1].numpy()] = True
    return mask


main = stage_command("Stage sweep_noise: accuracy vs test-time lambda under noise, and adaptive lambda.", sweep_noise)


if __name__ == "__main__":
    main()
