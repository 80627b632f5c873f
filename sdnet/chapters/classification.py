"""Chapter 2's tables and verdicts: the evaluate stages' accuracy records beside the paper's numbers.

    from sdnet.chapters.classification import Records, table1, table_d1, claims
    records = Records.load(study)            # reports/<profile>/train/<run>.json and curves/<run>.csv
    table, not_run = table1(records, study.data.datasets)
    verdicts = claims(records, study.data.datasets)

Our accuracies are written ``mean ± standard deviation over seeds``; a verdict compares two means
through the standard error of their difference, and says so in words (never with ``±``), so that a
``±`` in the chapter has one meaning.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sdnet.chapters import paper

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet-1k",
                 "synthetic": "synthetic (embedded)", "cifar10-jpeg": "CIFAR-10 (JPEG copy)"}
PAPER_DATASET = {"cifar10-jpeg": "cifar10"}  # the JPEG copy stands in for CIFAR-10 beside the paper

# Points of top-1 that "as accurate" allows: about twice the largest gap the paper calls a match
# (95.20 vs 95.54 on CIFAR-10, -0.34; +0.49 on CIFAR-100 and ImageNet).
MARGIN = 1.0
# SDNet-18-All "about as accurate" as SDNet-18: within this many points (a single seed each).
ALL_MARGIN = 2.0
# SDNet-18 "much faster" than SDNet-18-All: the -All network at most this fraction of its images/s.
SLOWER = 2 / 3


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def paper_dataset(dataset: str) -> str:
    """The dataset whose published numbers a row of ``dataset`` is put beside."""
    return PAPER_DATASET.get(dataset, dataset)


@dataclass(frozen=True)
class Records:
    """What the evaluate and train stages recorded for every run of a study."""

    runs: dict[str, dict[str, Any]]  # run -> reports/<profile>/train/<run>.json
    curves: dict[str, pd.DataFrame]  # trained run -> its curves/<run>.csv (one row per epoch and seed)
    per_run: dict[str, dict[str, Any]]  # the profile's train.per_run overrides
    shortcut: dict[str, bool]  # run -> whether its blocks keep their shortcuts
    model: dict[str, str]  # run -> its sdnet.models name

    @classmethod
    def load(cls, study) -> Records:
        runs = {run: json.loads((study.reports / "train" / f"{run}.json").read_text()) for run in study.params.runs}
        curves = {run: pd.read_csv(study.reports / "curves" / f"{run}.csv") for run, s in runs.items() if s["trained"]}
        specs = study.params.runs
        return cls(runs, curves, dict(study.train.per_run or {}),
                   {run: spec.shortcut for run, spec in specs.items()}, {run: spec.model for run, spec in specs.items()})

    @property
    def trained(self) -> list[str]:
        return [run for run, summary in self.runs.items() if summary["trained"]]

    @property
    def given(self) -> dict[str, dict[str, Any]]:
        """Runs given as checkpoint files (e.g. the authors' networks): their file's record."""
        return {run: summary["given"] for run, summary in self.runs.items() if summary.get("given")}

    def ours(self, run: str, dataset: str) -> dict[str, Any] | None:
        """The run's summary on ``dataset`` (per seed, mean and std), or None if it was not trained."""
        return self.runs[run]["datasets"].get(dataset)

    def recipe(self, run: str) -> dict[str, Any]:
        """The training settings ``run`` overrides (``per_run``), seeds aside: other seeds are the same recipe."""
        return {k: v for k, v in (self.per_run.get(run) or {}).items() if k != "seeds"}

    def budget(self, run: str) -> str:
        """The run's own budget and seeds, where the profile gives it one (empty otherwise)."""
        seeds = (self.per_run.get(run) or {}).get("seeds")
        own = ["own budget: " + ", ".join(f"{k}={v}" for k, v in self.recipe(run).items())] if self.recipe(run) else []
        return ", ".join(own + ([f"seeds={seeds}"] if seeds is not None else []))

    def architecture(self, run: str) -> str:
        return "without shortcuts" if self.model[run].endswith("_all") and not self.shortcut[run] else "with shortcuts"

    def images_per_second(self, run: str, dataset: str) -> float:
        """Training throughput: the median over the run's epochs (every seed) of each epoch's images/s.
        A median, not total images over total time, so that a few epochs slowed by other work on the
        machine do not count (on 2 CPU cores one busy core halves an epoch's speed)."""
        curve = self.curves[run]
        return float(curve[curve["dataset"] == dataset]["images_per_second"].median())


def accuracy_cell(summary: dict[str, Any] | None, key: str = "top1") -> str | None:
    """A table cell of a run's accuracy (``evaluate@<run>``'s summary): ``"87.62 ± 0.18 (3 seeds)"``,
    mean ± standard deviation over seeds; the mean alone for one seed."""
    if summary is None:
        return None
    n = len(summary["seeds"])
    mean = f"{summary[f'{key}_mean']:.2f}"
    return mean if n == 1 else f"{mean} ± {summary[f'{key}_std']:.2f} ({n} seeds)"


def trained_on(summary: dict[str, Any]) -> str:
    """The precision and machine of a row's seeds: one entry when they agree, else one per seed."""
    per_seed = {seed: f"{'+'.join(s['precisions'])} on {' + '.join(s['devices'])}" for seed, s in summary["seeds"].items()}
    if len(set(per_seed.values())) == 1:
        return next(iter(per_seed.values()))
    return "; ".join(f"seed {seed}: {what}" for seed, what in per_seed.items())


def _first_seed(summary: dict[str, Any]) -> dict[str, Any]:
    return next(iter(summary["seeds"].values()))


def _given_row(records: Records, dataset: str, run: str, column: str) -> dict[str, Any]:
    """A run given as a checkpoint file: not trained here, so no accuracy of ours in this chapter."""
    ref = paper_dataset(dataset)
    return {"data": dataset_name(dataset), "model": run,
            column: paper.RELEASED_CHECKPOINTS.get((ref, run), paper.published_top1(ref, run)),
            "note": f"given as a checkpoint file, not trained here ({records.given[run]['file']}); clean accuracy: chapter 3"}


def _rows(records: Records, datasets: list[str], models: tuple[str, ...], paper_column: str, ours) -> tuple[pd.DataFrame, list[str]]:
    """One row per dataset and model: ``ours(dataset, run, summary)`` for a run trained here, a
    row saying so for a run given as a file, and the rest listed as not run."""
    rows, not_run = [], []
    for dataset in datasets:
        for run in models:
            m = records.ours(run, dataset)
            if m is not None:
                rows.append({"data": dataset_name(dataset), "model": run, **ours(dataset, run, m)})
            elif run in records.given:
                rows.append(_given_row(records, dataset, run, paper_column))
            else:
                not_run.append(f"{run} on {dataset_name(dataset)}")
    return pd.DataFrame(rows), not_run


def table1(records: Records, datasets: list[str], models: tuple[str, ...] = ("resnet18", "resnet34", "sdnet18", "sdnet34")
           ) -> tuple[pd.DataFrame, list[str]]:
    """Table 1: top-1 per dataset and model, the paper's beside ours; and the rows not run."""
    def ours(dataset: str, run: str, m: dict[str, Any]) -> dict[str, Any]:
        one = _first_seed(m)
        return {
            "paper top-1": paper.published_top1(paper_dataset(dataset), run),
            "ours top-1": accuracy_cell(m), "ours top-5": accuracy_cell(m, "top5"),
            "params (M)": round(one["parameters"] / 1e6, 2), "epochs": one["epochs"],
            "train img/s": round(records.images_per_second(run, dataset)), "trained on": trained_on(m),
            "note": " ".join(filter(None, ["" if records.architecture(run) == "with shortcuts" else records.architecture(run),
                                           records.budget(run)])),
        }

    return _rows(records, datasets, models, "paper top-1", ours)


def table_d1(records: Records, datasets: list[str],
             models: tuple[str, ...] = ("sdnet18", "sdnet18_all", "sdnet18_all_noshortcut", "sdnet34", "sdnet34_all")
             ) -> tuple[pd.DataFrame, list[str]]:
    """Supplementary Table D.1: SDNet against SDNet-All, with the -All networks' training speed
    relative to SDNet-18's; and the rows not run."""
    def ours(dataset: str, run: str, m: dict[str, Any]) -> dict[str, Any]:
        base = records.ours("sdnet18", dataset)
        speed = records.images_per_second(run, dataset) / records.images_per_second("sdnet18", dataset) if base else None
        return {
            "architecture": records.architecture(run),
            "paper top-1 (released)": paper.RELEASED_CHECKPOINTS.get((paper_dataset(dataset), run)),
            "ours top-1": accuracy_cell(m), "params (M)": round(_first_seed(m)["parameters"] / 1e6, 2),
            "speed vs SDNet-18": None if speed is None else round(speed, 2), "note": records.budget(run),
        }

    return _rows(records, datasets, models, "paper top-1 (released)", ours)


@dataclass(frozen=True)
class Difference:
    """Mean top-1 of network a minus network b, and the standard error of that difference
    (``sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``, the seeds' standard deviations); None with one seed."""

    diff: float
    standard_error: float | None
    seeds: int  # the fewer of the two networks' seeds


def difference(a: dict[str, Any], b: dict[str, Any]) -> Difference:
    """:class:`Difference` of two summaries (:meth:`Records.ours`)."""
    na, nb = len(a["seeds"]), len(b["seeds"])
    se = math.sqrt(a["top1_std"] ** 2 / na + b["top1_std"] ** 2 / nb) if min(na, nb) > 1 else None
    return Difference(a["top1_mean"] - b["top1_mean"], se, min(na, nb))


def equivalence_verdict(d: Difference, margin: float = MARGIN) -> str:
    """Is the difference *small*? It holds when the whole interval of two standard errors either side
    of the difference lies within ``margin`` points either way, does not hold when it lies entirely
    beyond, and is not shown otherwise (the verdict writes no ``±``: that sign means a standard
    deviation over seeds in this chapter's tables).
    (A test of "no difference detected" would reward noisy runs: a gap hidden by a large spread
    would hold, and the same gap measured precisely would not.)"""
    if d.standard_error is None:
        return f"not shown: one seed only, a difference of {d.diff:+.2f} points cannot be told from seed noise"
    low, high = d.diff - 2 * d.standard_error, d.diff + 2 * d.standard_error
    gap = (f"{d.diff:+.2f} points, standard error {d.standard_error:.2f} over {d.seeds} seeds "
           f"(interval of two standard errors {low:+.2f} to {high:+.2f})")
    if -margin <= low and high <= margin:
        return f"holds: {gap}, inside the margin of {margin:g} point either way"
    if low > margin or high < -margin:
        return f"does not hold: SDNet-18 {'better' if d.diff > 0 else 'worse'} by {gap}, beyond the margin of {margin:g} point"
    return f"not shown: {gap} reaches past the margin of {margin:g} point either way; more seeds would tell"


def claims(records: Records, datasets: list[str]) -> list[dict[str, str]]:
    """The chapter's verdict rows (claim, paper, here, verdict) for every dataset of the profile."""
    rows = []
    for dataset in datasets:
        sdnet, resnet = records.ours("sdnet18", dataset), records.ours("resnet18", dataset)
        if sdnet is not None and resnet is not None:
            ref = paper_dataset(dataset)
            published = (paper.published_top1(ref, "sdnet18"), paper.published_top1(ref, "resnet18"))
            rows.append({
                "claim": "SDNet-18 is as accurate as ResNet-18",
                "paper": f"{published[0]} vs {published[1]} ({dataset_name(ref)})" if None not in published else "(no published number for this data)",
                "here": f"{accuracy_cell(sdnet)} vs {accuracy_cell(resnet)} ({dataset_name(dataset)})",
                "verdict": equivalence_verdict(difference(sdnet, resnet)),
            })
        full = records.ours("sdnet18_all", dataset)
        if sdnet is None or full is None or records.recipe("sdnet18_all") != records.recipe("sdnet18"):
            continue  # the -All network on its own (reduced) budget: no like-for-like comparison
        d = difference(full, sdnet)
        spread = "" if d.standard_error is None else f", standard error {d.standard_error:.2f} over {d.seeds} seeds"
        rows.append({
            "claim": "SDNet-18-All is about as accurate as SDNet-18 (within 2 points at equal epochs)",
            "paper": "95.02 vs 95.34 (released checkpoints, CIFAR-10)",
            "here": f"{accuracy_cell(full)} vs {accuracy_cell(sdnet)} ({dataset_name(dataset)})",
            "verdict": f"{'holds' if abs(d.diff) <= ALL_MARGIN else 'does not hold'}: {d.diff:+.2f} points{spread}",
        })
        speed = records.images_per_second("sdnet18_all", dataset) / records.images_per_second("sdnet18", dataset)
        rows.append({
            "claim": "SDNet-18 trains much faster than SDNet-18-All",
            "paper": "Table D.1 (speed on one GPU)",
            "here": f"SDNet-18-All trains at {speed:.2f}x SDNet-18's images/s (median epoch, {trained_on(full)}, same profile)",
            "verdict": ("holds: each CSC layer costs three convolutions" if speed < SLOWER
                        else f"does not hold here: SDNet-18-All at {speed:.2f}x, not below {SLOWER:.2f}x"),
        })
    return rows


def metrics(records: Records, datasets: list[str]) -> dict[str, float]:
    """``{"<dataset>/<run>/top1": mean top-1}`` of every trained run (the chapter's DVC metrics)."""
    return {f"{dataset}/{run}/top1": round(records.ours(run, dataset)["top1_mean"], 2)
            for run in records.trained for dataset in datasets if records.ours(run, dataset) is not None}


def training_curves(records: Records, dataset: str, key: str) -> dict[str, pd.DataFrame]:
    """Per trained run: ``key`` per epoch over its seeds, as columns mean, low and high (the seeds' range)."""
    out = {}
    for run in records.trained:
        curve = records.curves[run]
        per_epoch = curve[curve["dataset"] == dataset].groupby("epoch")[key]
        out[run] = pd.DataFrame({"mean": per_epoch.mean(), "low": per_epoch.min(), "high": per_epoch.max()})
    return out
