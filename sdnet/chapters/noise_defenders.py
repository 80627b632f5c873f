"""Chapter 3's comparisons as a skeptical reader asks for them: three defenders, each held out,
every gain with its clean cost against the same baseline, and intervals over images and seeds.

A defence has a knob: SDNet-18's test-time lambda, or the strength of a filter in front of
ResNet-18 (a Gaussian blur's sigma, a 3x3 median's passes; strength 0 is the bare ResNet-18).
Which value a defender picks depends on what it knows of the noise (:data:`DEFENDERS`):

- ``condition``: the noise and its severity (one value per condition, the paper's tuning);
- ``noise``: the kind of noise, not its strength (one value per noise);
- ``nothing``: one value for every noise and severity, chosen on the mean over all of them.

Every choice is made on one half of the images and scored on the other, both ways round
(:mod:`sdnet.chapters.protocols`); ``same`` is the paper's oracle (chosen on the scored images), kept for
the tables. The clean cost of a choice is the clean accuracy at the chosen values.

Intervals: the per-image hits (:mod:`sdnet.hits`) let the whole computation, choices included,
be repeated on bootstrap resamples of the images (within each half, the same resample for every
defence and seed: the comparisons stay paired). A gain's uncertainty has two parts, the images
(the bootstrap's standard deviation of the mean over seeds) and the networks (the standard
deviation over seeds); :func:`sdnet.chapters.verdicts.gain_verdict` judges it on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdnet import hits as hits_file
from sdnet.chapters.verdicts import gain_verdict, seed_sd

DEFENDERS = {  # what each defender knows: "a defender who ..."
    "condition": "knows the noise and its severity",
    "noise": "knows the kind of noise, not its severity",
    "nothing": "knows nothing of the noise (one setting for every noise and severity)",
}
RESAMPLES = 1000


@dataclass(frozen=True)
class Knob:
    """One defence's per-image hits, ``[seed, value, condition, image]`` (bool), over the whole
    subset in its order; ``values`` ascending (the first is the mildest: ties go to it)."""

    name: str
    values: np.ndarray
    seeds: list[int]
    conditions: list[tuple[str, int]]
    hits: np.ndarray


def knob(table: pd.DataFrame, rows: list[np.ndarray], in_half1: np.ndarray, name: str, knob_column: str) -> Knob:
    """A :class:`Knob` from a table with one row per seed, ``knob_column`` value, condition and
    half (``sweep.csv``, ``filters.csv``, ``steps.csv``, filtered to one defence) and its rows of
    hits (row i of the table, the images of its half in the subset's order; a shorter row holds the
    first images of its half: :func:`first_of_halves` says which)."""
    table = table.reset_index(drop=True)
    seeds = sorted(table["seed"].unique().tolist())
    values = np.array(sorted(table[knob_column].unique()), dtype=float)
    conditions = list(dict.fromkeys(zip(table["noise"], table["severity"])))
    conditions.sort(key=lambda c: (c[0] != "clean",))  # clean first, the rest in the table's order
    out = np.zeros((len(seeds), len(values), len(conditions), len(in_half1)), dtype=bool)
    where = {c: i for i, c in enumerate(conditions)}
    for i, row in table.iterrows():
        s, v = seeds.index(row["seed"]), int(np.argmin(np.abs(values - row[knob_column])))
        c = where[(row["noise"], int(row["severity"]))]
        where_half = np.flatnonzero(in_half1 == bool(row["half"]))
        out[s, v, c, where_half[: len(rows[i])]] = rows[i]
    return Knob(name, values, seeds, conditions, out)


def first_of_halves(in_half1: np.ndarray, per_half: int) -> np.ndarray:
    """The images a measurement on the first ``per_half`` images of each half saw (a mask)."""
    mask = np.zeros(len(in_half1), dtype=bool)
    for half in (False, True):
        mask[np.flatnonzero(in_half1 == half)[:per_half]] = True
    return mask


def _images(k: Knob, mask: np.ndarray) -> Knob:
    """The knob on the images of ``mask`` only."""
    return Knob(k.name, k.values, k.seeds, k.conditions, k.hits[..., mask])


def resample_weights(in_half1: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """Image weights ``[images, 1 + resamples]``: column 0 the data as measured (all ones), then
    bootstrap resamples of the images, each half resampled within itself (its size kept)."""
    rng = np.random.default_rng(seed)
    w = np.ones((len(in_half1), 1 + resamples), dtype=np.float32)
    for half in (False, True):
        idx = np.flatnonzero(in_half1 == half)
        draws = rng.integers(0, len(idx), size=(resamples, len(idx)))
        counts = np.zeros((resamples, len(idx)), dtype=np.float32)
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
        w[idx, 1:] = counts.T
    return w


def half_accuracy(k: Knob, weights: np.ndarray, in_half1: np.ndarray) -> np.ndarray:
    """Accuracy (%) ``[seed, value, condition, resample, half]`` under each column of ``weights``."""
    S, V, C, N = k.hits.shape
    flat = k.hits.reshape(-1, N).astype(np.float32)
    out = np.empty((S * V * C, weights.shape[1], 2), dtype=np.float32)
    for h, half in enumerate((False, True)):
        w = weights * (in_half1 == half)[:, None]
        out[:, :, h] = 100 * (flat @ w) / w.sum(0)
    return out.reshape(S, V, C, weights.shape[1], 2)


def _choose(acc: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """Per seed, group of conditions, resample and half h: the value best on the *other* half,
    averaged over the group's conditions; shape ``[seed, group, resample, half]`` (indices)."""
    scores = np.stack([acc[:, :, g].mean(2) for g in groups], axis=2)  # [S, V, G, B, H]
    other = scores[..., ::-1]  # half h is chosen on half 1 - h
    return other.argmax(1)  # the first maximum: the mildest value on a tie


def _at(acc: np.ndarray, chosen: np.ndarray, condition: int) -> np.ndarray:
    """``acc[s, chosen[s, b, h], condition, b, h]``: ``[seed, resample, half]``."""
    S, _, _, B, H = acc.shape
    s, b, h = np.ix_(np.arange(S), np.arange(B), np.arange(H))
    return acc[s, chosen, condition, b, h]


def defend(k: Knob, acc: np.ndarray, sizes: tuple[int, int], defender: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Held out, for one defender (``acc`` from :func:`half_accuracy`): the noises, the
    severity-averaged noisy accuracy ``[seed, noise, resample]``, the clean accuracy at the
    values chosen ``[seed, resample]`` (the mean over the choices, each counted once per condition
    it serves), and the values chosen on the data (every seed, choice and half, flattened)."""
    noisy_conditions = [i for i, c in enumerate(k.conditions) if c[0] != "clean"]
    clean = k.conditions.index(("clean", 0))
    noises = list(dict.fromkeys(k.conditions[i][0] for i in noisy_conditions))
    if defender == "condition":
        groups = [[i] for i in noisy_conditions]
    elif defender == "noise":
        groups = [[i for i in noisy_conditions if k.conditions[i][0] == n] for n in noises]
    elif defender == "nothing":
        groups = [noisy_conditions]
    else:
        raise ValueError(f"defender must be one of {list(DEFENDERS)}, got {defender!r}")
    chosen = _choose(acc, groups)  # [S, G, B, H]
    weight = np.array(sizes, dtype=np.float64) / sum(sizes)
    per_condition, clean_parts = {}, []
    for g, members in enumerate(groups):
        clean_parts.append((_at(acc, chosen[:, g], clean) * weight).sum(-1)[..., None].repeat(len(members), -1))
        for i in members:
            per_condition[i] = (_at(acc, chosen[:, g], i) * weight).sum(-1)  # [S, B]
    noisy = np.stack([np.mean([per_condition[i] for i in noisy_conditions if k.conditions[i][0] == n], axis=0) for n in noises], axis=1)
    return noises, noisy, np.concatenate(clean_parts, axis=-1).mean(-1), k.values[chosen[:, :, 0]].ravel()


def fixed(k: Knob, acc: np.ndarray, sizes: tuple[int, int], value: float) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The same quantities as :func:`defend` for one value of the knob, not tuned (e.g. SDNet-18 at
    its training lambda, or the bare ResNet-18)."""
    v = int(np.argmin(np.abs(k.values - value)))
    weight = np.array(sizes, dtype=np.float64) / sum(sizes)
    whole = (acc[:, v] * weight).sum(-1)  # [S, C, B]
    noisy_conditions = [i for i, c in enumerate(k.conditions) if c[0] != "clean"]
    noises = list(dict.fromkeys(k.conditions[i][0] for i in noisy_conditions))
    noisy = np.stack([whole[:, [i for i in noisy_conditions if k.conditions[i][0] == n]].mean(1) for n in noises], axis=1)
    return noises, noisy, whole[:, k.conditions.index(("clean", 0))], np.array([k.values[v]])


@dataclass(frozen=True)
class Defended:
    """A defence's held-out numbers under one defender (or untuned): ``noisy [seed, noise,
    resample]`` severity-averaged per noise, ``clean [seed, resample]``; resample 0 is the data."""

    name: str
    defender: str
    noises: list[str]
    noisy: np.ndarray
    clean: np.ndarray
    chosen: np.ndarray  # the values chosen on the data (every seed, choice and half)
    grid: np.ndarray  # the values there were to choose from

    def mean_noisy(self) -> np.ndarray:
        """``[seed, resample]``: the mean over the noises (the chapter's headline accuracy)."""
        return self.noisy.mean(1)

    def at_edge(self) -> list[str]:
        """Where a chosen value sits at an edge of the grid beyond which a better one may lie: its
        largest value, or its smallest non-zero one when 0 (no filter) is the grid's first."""
        edges = []
        if np.isclose(self.chosen, self.grid[-1]).any() and len(self.grid) > 1:
            edges.append(f"{self.grid[-1]:g}, the largest")
        if len(self.grid) > 2 and self.grid[0] == 0 and np.isclose(self.chosen, self.grid[1]).any():
            edges.append(f"{self.grid[1]:g}, the smallest above none")
        return edges


@dataclass(frozen=True)
class Comparison:
    """``a - b`` on noisy images (mean of the noises) and on clean images, per seed on the data,
    and the image-sampling standard deviation of their mean over seeds."""

    a: str
    b: str
    defender: str
    noisy_gain: np.ndarray  # [seed]
    noisy_image_sd: float
    clean_gain: np.ndarray  # [seed]: negative is a cost
    clean_image_sd: float

    def row(self) -> dict:
        g, c = self.noisy_gain, self.clean_gain
        return {"defender": self.defender, "defence": self.a, "against": self.b,
                "noisy gain": float(g.mean()), "seed sd": seed_sd(g), "image sd": self.noisy_image_sd,
                "clean change": float(c.mean()), "clean seed sd": seed_sd(c), "clean image sd": self.clean_image_sd,
                "verdict": gain_verdict(float(g.mean()), seed_sd(g), self.noisy_image_sd, seeds=len(g), other=self.b)}


def compare(a: Defended, b: Defended) -> Comparison:
    """``a - b`` paired on the same images, seeds and resamples."""
    noisy = a.mean_noisy() - b.mean_noisy()  # [S, B]
    clean = a.clean - b.clean
    image_sd = lambda d: float(d[:, 1:].mean(0).std(ddof=1)) if d.shape[1] > 2 else 0.0  # noqa: E731
    return Comparison(a.name, b.name, a.defender, noisy[:, 0], image_sd(noisy), clean[:, 0], image_sd(clean))


def load_knobs(folder, about: dict) -> tuple[dict[str, Knob], np.ndarray, tuple[int, int]]:
    """The knobs of the ``sweep_noise`` results in ``folder``: ``sdnet`` (lambda), ``resnet`` (the bare
    ResNet-18, one value), ``blur`` and ``median`` (strength, 0 included) where measured; the
    halves (``in_half1``) and their sizes."""
    from pathlib import Path

    folder = Path(folder)
    stored = hits_file.load(folder / "hits.npz")
    in_half1 = stored["subset.in_half1"][0]
    sizes = (int((~in_half1).sum()), int(in_half1.sum()))
    sweep = pd.read_csv(folder / "sweep.csv")
    knobs = {}
    mine = sweep["model"] == about["sdnet"]
    knobs["sdnet"] = knob(sweep[mine], [stored["sweep"][i] for i in np.flatnonzero(mine)], in_half1, "SDNet-18", "lam")
    if about.get("baseline"):
        base = (sweep["model"] == about["baseline"]) & np.isclose(sweep["lam"], about["train_lam"])
        knobs["resnet"] = knob(sweep[base], [stored["sweep"][i] for i in np.flatnonzero(base)], in_half1, "ResNet-18", "lam")
    if (folder / "filters.csv").is_file():
        filters = pd.read_csv(folder / "filters.csv")
        for kind, label in (("blur", "ResNet-18 + blur"), ("median", "ResNet-18 + median")):
            part = filters["filter"] == kind
            if part.any():
                knobs[kind] = knob(filters[part], [stored["filters"][i] for i in np.flatnonzero(part)], in_half1, label, "strength")
    return knobs, in_half1, sizes


def defended(knobs: dict[str, Knob], in_half1: np.ndarray, sizes: tuple[int, int], train_lam: float,
             resamples: int = RESAMPLES) -> dict[tuple[str, str], Defended]:
    """Every defence under every defender, and the untuned baselines (defender ``fixed``): keys
    ``(knob, defender)``; ``("sdnet", "fixed")`` is SDNet-18 at the training lambda,
    ``("resnet", "fixed")`` the bare ResNet-18."""
    weights = resample_weights(in_half1, resamples)
    out = {}
    for key, k in knobs.items():
        acc = half_accuracy(k, weights, in_half1)
        if key == "resnet":
            out[(key, "fixed")] = Defended(k.name, "fixed", *fixed(k, acc, sizes, k.values[0]), k.values)
            continue
        if key == "sdnet":
            out[(key, "fixed")] = Defended(f"{k.name} at λ {train_lam:g}", "fixed", *fixed(k, acc, sizes, train_lam), k.values)
        for d in DEFENDERS:
            out[(key, d)] = Defended(k.name, d, *defend(k, acc, sizes, d), k.values)
    return out


def _subset(k: Knob, seeds: list[int], values: np.ndarray, conditions: list[tuple[str, int]]) -> Knob:
    """The knob restricted to some seeds, values and conditions (e.g. to line up with another)."""
    s = [k.seeds.index(x) for x in seeds]
    v = [int(np.argmin(np.abs(k.values - x))) for x in values]
    c = [k.conditions.index(x) for x in conditions]
    return Knob(k.name, k.values[v], list(seeds), list(conditions), k.hits[np.ix_(s, v, c)])


def stem_steps_comparison(folder, about: dict, knobs: dict[str, Knob], in_half1: np.ndarray, resamples: int = RESAMPLES) -> pd.DataFrame:
    """SDNet-18 with its stem run for more FISTA steps at test time (``steps.csv``) against the
    trained 2 steps, on the same seed, lambdas, conditions and images (the first of each half:
    ``images`` of steps.csv): held-out accuracy under noise for each defender, and the clean
    accuracy at the chosen lambdas. One row per steps and defender."""
    from pathlib import Path

    folder = Path(folder)
    table = pd.read_csv(folder / "steps.csv")
    rows_hits = hits_file.load(folder / "hits.npz")["steps"]
    per_half = int(table.groupby("half")["images"].first().min())
    mask = first_of_halves(in_half1, per_half)  # the images the steps were measured on
    halves = in_half1[mask]
    sizes = (int((~halves).sum()), int(halves.sum()))
    weights = resample_weights(halves, resamples)
    out, base = [], None
    for n_steps, part in table.groupby("steps"):
        k = _images(knob(part, [rows_hits[i] for i in part.index], in_half1, f"{n_steps} steps", "lam"), mask)
        if base is None:
            base = _images(_subset(knobs["sdnet"], k.seeds, k.values, k.conditions), mask)
            base_acc = half_accuracy(base, weights, halves)
        acc = half_accuracy(k, weights, halves)
        for d in ("condition", "nothing"):
            two = Defended("2 steps", d, *defend(base, base_acc, sizes, d), base.values)
            more = Defended(k.name, d, *defend(k, acc, sizes, d), k.values)
            c = compare(more, two)
            out.append({"stem steps": int(n_steps), "defender": d, "noisy": float(more.mean_noisy()[:, 0].mean()), "noisy at 2 steps": float(two.mean_noisy()[:, 0].mean()),
                        "gain": float(c.noisy_gain.mean()), "image sd": c.noisy_image_sd,
                        "clean": float(more.clean[:, 0].mean()), "clean at 2 steps": float(two.clean[:, 0].mean()),
                        "verdict": gain_verdict(float(c.noisy_gain.mean()), 0.0, c.noisy_image_sd, seeds=1, other="2 steps")})
    return pd.DataFrame(out)


def adaptive_against_fixed(folder, about: dict, knobs: dict[str, Knob], in_half1: np.ndarray, sizes: tuple[int, int]) -> pd.DataFrame:
    """Lambda chosen from the input (the line fitted without the noise evaluated, the stage's
    first seed) against one lambda for every noise chosen held out (the defender who knows
    nothing, the same seed) and against the training lambda, paired per image: the mean over the
    noisy conditions of each image's hits, and on clean images. One row per adaptive mode and
    rival, with the standard error over images."""
    from pathlib import Path

    folder = Path(folder)
    adaptive = pd.read_csv(folder / "adaptive.csv")
    stored = hits_file.load(folder / "hits.npz")
    k = knobs["sdnet"]
    s = k.seeds.index(about["adaptive_seed"])
    acc = half_accuracy(k, resample_weights(in_half1, 0), in_half1)[s : s + 1]
    noisy_conditions = [i for i, c in enumerate(k.conditions) if c[0] != "clean"]
    chosen = _choose(acc, [noisy_conditions])[0, 0, 0]  # [half]: the index scored on that half
    per_image_value = np.where(in_half1, chosen[1], chosen[0])
    one = k.hits[s, per_image_value, :, np.arange(len(in_half1))].T  # [condition, image]
    train = k.hits[s, int(np.argmin(np.abs(k.values - about["train_lam"])))]
    held = adaptive[adaptive["fit"] == "held out"]
    rivals = {f"one λ for every noise, held out ({k.values[chosen[0]]:g} / {k.values[chosen[1]]:g})": one, f"training λ {about['train_lam']:g}": train}
    rows = []
    for mode in ("sample", "batch"):
        mine = {(r.noise, int(r.severity)): stored[f"adaptive.{mode}"][i] for i, r in held.iterrows()}
        ours = np.stack([mine[c] for c in k.conditions])
        for name, theirs in rivals.items():
            d = ours[noisy_conditions].mean(0).astype(float) - theirs[noisy_conditions].mean(0)
            dc = ours[0].astype(float) - theirs[0]
            se, se_clean = 100 * d.std(ddof=1) / np.sqrt(len(d)), 100 * dc.std(ddof=1) / np.sqrt(len(dc))
            rows.append({"adaptive": f"per {'image' if mode == 'sample' else 'batch of one condition'}", "against": name,
                         "noisy": 100 * ours[noisy_conditions].mean(), "theirs": 100 * theirs[noisy_conditions].mean(),
                         "gain": 100 * d.mean(), "image sd": se, "clean": 100 * ours[0].mean(), "clean theirs": 100 * theirs[0].mean(),
                         "clean change": 100 * dc.mean(), "clean image sd": se_clean,
                         "verdict": gain_verdict(100 * d.mean(), 0.0, se, seeds=1, other=name.split(" (")[0])})
    return pd.DataFrame(rows)


def comparisons(found: dict[tuple[str, str], Defended]) -> pd.DataFrame:
    """Every gain the chapter judges, each against one baseline with its clean change against the
    same one, for every defender: SDNet-18 tuned against ResNet-18 (what SDNet-18 with a knob earns
    over the plain network), against itself at the training lambda (what tuning lambda earns), and
    against each filter in front of ResNet-18 tuned by the same defender; each filter against
    ResNet-18. Columns of :meth:`Comparison.row`."""
    def row(a: Defended, b: Defended, **names) -> dict:
        edges = [f"{x.name} at {e}" for x in (a, b) for e in x.at_edge()]
        return {**compare(a, b).row(), **names, "grid edges": "; ".join(edges)}

    rows = []
    rivals = [k for k in ("blur", "median") if (k, "condition") in found]
    for d in DEFENDERS:
        sd = found[("sdnet", d)]
        if ("resnet", "fixed") in found:
            rows.append(row(sd, found[("resnet", "fixed")]))
        rows.append(row(sd, found[("sdnet", "fixed")]))
        for r in rivals:
            rows.append(row(sd, found[(r, d)], against=f"{found[(r, d)].name}, tuned"))
        for r in rivals:
            rows.append(row(found[(r, d)], found[("resnet", "fixed")], defence=f"{found[(r, d)].name}, tuned"))
    return pd.DataFrame(rows)


def defenders_table(found: dict[tuple[str, str], Defended]) -> pd.DataFrame:
    """Held-out accuracy under noise (mean of the noises, severity-averaged) and clean accuracy at
    the values chosen, mean over seeds, for every defence and defender, with the values chosen
    and any grid edge they sit at."""
    rows = []
    for (key, d), x in found.items():
        values = sorted(set(np.round(x.chosen, 4)))
        rows.append({"defence": x.name, "defender": d, "noisy": float(x.mean_noisy()[:, 0].mean()), "clean": float(x.clean[:, 0].mean()),
                     "values chosen": " ".join(f"{v:g}" for v in values), "at an edge": "; ".join(x.at_edge()) if d != "fixed" else ""})
    return pd.DataFrame(rows)
