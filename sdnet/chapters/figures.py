"""Figures: dictionary atoms, hidden codes mapped back to the image, and the chapters' plots.

Every plotting function returns a matplotlib Figure and never shows it: a notebook displays it
inline, a script saves it (``fig.savefig(...)``). Figures are made with pyplot, so the caller
closes them (``plt.close(fig)``) when making many. What they show is computed elsewhere
(:mod:`sdnet.analysis`, :mod:`sdnet.robustness`, :mod:`sdnet.attacks`); nothing here runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import Tensor, nn

from sdnet.analysis import contrast_kept, inside_frame
from sdnet.csc import CSCConv2d
from sdnet.robustness import LambdaFit, best_lambda_table

# ---------------------------------------------------------------------------------------------
# Dictionary atoms
# ---------------------------------------------------------------------------------------------


def atom_images(layer_or_weight: CSCConv2d | nn.Conv2d | Tensor) -> Tensor:
    """The atoms as images ``[n_atoms, k, k, C]`` in [0, 1], each min-max scaled on its own
    (atoms have unit norm but very different ranges; a common scale would hide most of them)."""
    weight = layer_or_weight.weight if isinstance(layer_or_weight, nn.Module) else layer_or_weight
    w = weight.detach().float().cpu()
    if w.dim() != 4:
        raise ValueError(f"expected a dictionary [atoms, channels, k, k], got shape {list(w.shape)}")
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    return ((w - lo) / (hi - lo).clamp_min(1e-12)).permute(0, 2, 3, 1)


def plot_atoms(layer_or_weight: CSCConv2d | nn.Conv2d | Tensor, ncols: int | None = None, title: str | None = None) -> Figure:
    """The dictionary atoms as a grid of images: RGB for 3 input channels, otherwise the mean
    over channels in grey. ``ncols`` defaults to a square grid (16 atoms: 4 x 4)."""
    atoms = atom_images(layer_or_weight)
    n = len(atoms)
    ncols = max(1, min(ncols or math.ceil(math.sqrt(n)), n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.55 * ncols + 0.2, 0.55 * nrows + (0.45 if title else 0.1)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            atom = atoms[i] if atoms.shape[-1] == 3 else atoms[i].mean(-1)
            ax.imshow(atom.numpy(), cmap=None if atoms.shape[-1] == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.15, w_pad=0.15)
    return fig


# ---------------------------------------------------------------------------------------------
# Hidden codes back to the image (computed by sdnet.analysis)
# ---------------------------------------------------------------------------------------------


def stretch_around_mean(image: Tensor, border: int = 0, spread: float = 2.5) -> Tensor:
    """One panel for display: each channel minus its mean and divided by the panel's standard
    deviation, both taken inside a frame of ``border`` pixels, mapped so that ``spread`` standard
    deviations reach 0 and 1 (0.5 is the mean colour). Whatever structure a faint reconstruction
    keeps fills the panel, and a colour cast (a different mean per channel) does not."""
    inner = inside_frame(image, border)
    centred = image - inner.mean(dim=(-2, -1), keepdim=True)
    scale = inside_frame(centred, border).std().clamp_min(1e-12)
    return (0.5 + centred / (2 * spread * scale)).clamp(0, 1)


def plot_layer_reconstructions(
    x: Tensor,
    reconstructions: Sequence[Tensor],
    names: Sequence[str] | None = None,
    n_images: int = 4,
    *,
    rescale: bool = False,
    border: int = 0,
    per_row: int | None = None,
) -> Figure:
    """For each image, its panels: the input, then its reconstruction from each layer's code.

    The panels of one image fill a row, or with ``per_row`` wrap onto several rows of that many
    panels (so that 18 panels stay readable at page width: two rows of 9). Pixel values are clipped
    to [0, 1]; ``rescale=True`` stretches every reconstruction on its own instead
    (:func:`stretch_around_mean`, inside a frame of ``border`` pixels so that the bright edges zero
    padding leaves on deep reconstructions do not set the range) and writes in its title how much
    contrast it kept (:func:`sdnet.analysis.contrast_kept` inside the frame: "x0.05" is a
    reconstruction 20 times fainter than its image).
    """
    n_images = min(n_images, len(x))
    panels = [x, *reconstructions]
    cols = min(per_row or len(panels), len(panels))
    rows_per_image = math.ceil(len(panels) / cols)
    titles = ["input", *(names if names is not None else [f"layer {l}" for l in range(len(reconstructions))])]
    fig, axes = plt.subplots(n_images * rows_per_image, cols, figsize=(1.0 * cols, 1.1 * n_images * rows_per_image), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, batch in enumerate(panels):
        for i in range(n_images):
            image, title = batch[i].detach().float().cpu(), titles[j]
            if rescale and j > 0:
                kept = contrast_kept(inside_frame(x[i:i + 1].float().cpu(), border), inside_frame(image[None], border)).item()
                image, title = stretch_around_mean(image, border), f"{title} ×{kept:.2g}"
            image = image.clamp(0, 1).permute(1, 2, 0).numpy()
            ax = axes[i * rows_per_image + j // cols, j % cols]
            ax.imshow(image if image.shape[-1] == 3 else image.mean(-1), cmap=None if image.shape[-1] == 3 else "gray")
            ax.set_title(title, fontsize=7, pad=2)
    fig.tight_layout(h_pad=0.3, w_pad=0.2)
    return fig


# ---------------------------------------------------------------------------------------------
# Sparsity of the codes
# ---------------------------------------------------------------------------------------------


def plot_sparsity(sparsity: dict[str, float], floor: dict[str, float] | None = None, lam: float | None = None,
                  reference: dict[str, float] | None = None, reference_label: str = "ResNet-18 after ReLU") -> Figure:
    """Bar plot of the fraction of zero code entries per CSC layer, layers in forward order; with
    ``floor`` (the same layers at lambda 0, :func:`sdnet.analysis.sparsity_on_own_input`) drawn in
    grey in front, so that each bar's coloured top is what the l1 penalty at ``lam`` adds; with
    ``reference`` (e.g. :func:`sdnet.analysis.relu_zeros_after_convs`, one value per layer in the
    same order) as black ticks."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(sparsity)), 3.0))
    ax.bar(range(len(sparsity)), list(sparsity.values()), label=f"at lambda {lam:g}" if lam is not None else None)
    if floor is not None:
        ax.bar(range(len(floor)), [floor[name] for name in sparsity], color="0.6", label="at lambda 0 (non-negativity alone)")
    if reference is not None:
        ax.scatter(range(len(reference)), list(reference.values()), marker="_", s=200, color="black", zorder=3, label=reference_label)
    if floor is not None or reference is not None:
        ax.legend(fontsize=7, loc="upper left")
    ax.set_xticks(range(len(sparsity)), list(sparsity), rotation=90, fontsize=7)
    ax.set(ylabel="fraction of zero entries", ylim=(0, 1))
    fig.tight_layout()
    return fig


def plot_sparsity_curves(two_steps: dict[str, list], converged: dict[str, list], mark: float | None = None) -> Figure:
    """Chapter 1's comparison at equal sparsity: a dictionary's reconstruction error against its
    code's fraction of zeros as lambda varies (:class:`sdnet.reconstruction.Curve`), at 2 steps
    (left) and at convergence (right). ``two_steps``/``converged`` map a label to its curves: a
    label with one curve is a line, with several (random dictionaries) a band from the lowest to
    the highest error at each fraction of zeros, with their mean. ``mark``: a fraction of zeros
    drawn as a dotted line (where the verdict compares)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), sharey=True)
    for ax, groups, title in ((axes[0], two_steps, "2 steps (as SDNet)"), (axes[1], converged, "converged")):
        for k, (label, curves) in enumerate(groups.items()):
            color = f"C{k}"
            if len(curves) == 1:
                c = curves[0]
                ax.plot(c.zeros.mean(1), c.error.mean(1), "o-", ms=3, color=color, label=label)
                continue
            grid = np.linspace(max(c.zeros.mean(1).min().item() for c in curves), min(c.zeros.mean(1).max().item() for c in curves), 60)
            values = np.array([[np.interp(g, *_sorted(c)) for g in grid] for c in curves])
            ax.fill_between(grid, values.min(0), values.max(0), color=color, alpha=0.2, lw=0)
            ax.plot(grid, values.mean(0), "--", color=color, label=f"{label} (mean, band: range)")
        if mark is not None:
            ax.axvline(mark, color="gray", ls=":", lw=1)
        ax.set(title=title, xlabel="fraction of zero code entries", xlim=(0, 1))
    axes[0].set(ylabel="error after the best scaling\n(1 - correlation²)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _sorted(curve) -> tuple[np.ndarray, np.ndarray]:
    """A curve's mean zeros (increasing) and mean error, for ``np.interp``."""
    zeros, error = curve.zeros.double().mean(1).numpy(), curve.error.double().mean(1).numpy()
    order = np.argsort(zeros, kind="stable")
    return zeros[order], error[order]


# ---------------------------------------------------------------------------------------------
# Robustness plots (tables of sdnet.robustness and sdnet.attacks)
# ---------------------------------------------------------------------------------------------


def _one_model(table: pd.DataFrame, model: str | None) -> pd.DataFrame:
    """The rows of ``model``; with ``model=None`` the table must hold a single model."""
    if "model" not in table.columns:
        return table
    if model is None:
        models = table["model"].unique()
        if len(models) != 1:
            raise ValueError(f"the table holds several models {list(models)}: pass model=...")
        return table
    rows = table[table["model"] == model]
    if rows.empty:
        raise ValueError(f"no rows for model {model!r}; the table has {list(table['model'].unique())}")
    return rows


def plot_accuracy_vs_lambda(
    table: pd.DataFrame, model: str | None = None, train_lam: float | None = None, *, baseline: pd.DataFrame | None = None,
    baseline_name: str = "ResNet-18", ncols: int = 2,
) -> Figure:
    """Accuracy against the test-time lambda: one panel per noise (``ncols`` to a row), one line per severity.

    ``table`` is a :func:`sdnet.robustness.sweep` table. The clean condition (noise ``"clean"``),
    if present, is drawn in every panel in black; ``train_lam`` is marked by a vertical line;
    ``baseline`` (e.g. the ResNet's rows, named ``baseline_name`` in the legend) adds its accuracy
    per severity as dotted lines of the severity's colour.
    """
    rows = _one_model(table, model)
    noises = [n for n in rows["noise"].unique() if n != "clean"] or ["clean"]
    clean = rows[rows["noise"] == "clean"]
    severities = sorted(rows.loc[rows["noise"] != "clean", "severity"].unique())
    colours = dict(zip(severities, plt.cm.viridis(np.linspace(0.0, 0.9, max(len(severities), 1)))))
    ncols = min(ncols, len(noises))
    nrows = math.ceil(len(noises) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(noises):]:
        ax.axis("off")
    for ax, noise in zip(axes.flat, noises):
        if not clean.empty:
            ax.plot(clean["lam"], clean["top1"], "k.-", lw=1, label="clean")
        noisy = rows[rows["noise"] == noise] if noise != "clean" else rows.iloc[:0]
        for severity, curve in noisy.groupby("severity"):
            ax.plot(curve["lam"], curve["top1"], "o-", ms=3, color=colours[severity], label=f"severity {severity}")
            if baseline is not None:
                ref = baseline[(baseline["noise"] == noise) & (baseline["severity"] == severity)]
                if not ref.empty:
                    ax.axhline(ref["top1"].iloc[0], color=colours[severity], ls=":", lw=1)
        if train_lam is not None:
            ax.axvline(train_lam, color="gray", ls="--", lw=1, label=f"training lambda {train_lam:g}")
        if baseline is not None:
            ax.plot([], [], color="gray", ls=":", lw=1, label=f"{baseline_name}, same severity")
        ax.set(title=noise, xlabel="test-time lambda")
    for row in axes:
        row[0].set_ylabel("top-1 accuracy (%)")
    axes.flat[min(len(noises), ncols) - 1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_best_lambda_vs_severity(table: pd.DataFrame, model: str | None = None) -> Figure:
    """The best test-time lambda against severity, one line per noise.

    ``table`` is a :func:`sdnet.robustness.best_lambda_table` table, or a sweep table (then the best
    lambda is computed here).
    """
    best = table if "best_lam" in table.columns else best_lambda_table(table)
    best = _one_model(best, model)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for noise, part in best[best["noise"] != "clean"].groupby("noise"):
        part = part.sort_values("severity")
        ax.plot(part["severity"], part["best_lam"], "o-", label=noise)
    ax.set(xlabel="severity", ylabel="best test-time lambda")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_lambda_vs_error_fit(
    errors: Sequence[float], best_lambdas: Sequence[float], fit: LambdaFit, noises: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
) -> Figure:
    """The points (reconstruction error at the training lambda, best lambda) and the fitted line;
    with ``noises``, one colour per noise (in the legend) and each point's severity written beside it."""
    errors, best_lambdas = np.asarray(errors, dtype=float), np.asarray(best_lambdas, dtype=float)
    fit = LambdaFit(*fit)
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    noises = list(noises) if noises is not None else [""] * len(errors)
    for i, noise in enumerate(dict.fromkeys(noises)):
        mine = np.array([n == noise for n in noises])
        ax.scatter(errors[mine], best_lambdas[mine], s=18, zorder=3, color=f"C{i}", label=noise or None)
    for e, lam, severity in zip(errors, best_lambdas, severities if severities is not None else []):
        if severity:
            ax.annotate(f"{severity}", (e, lam), fontsize=6, xytext=(3, 2), textcoords="offset points")
    span = np.linspace(errors.min(), errors.max(), 50)
    ax.plot(span, fit.predict(span), "r-", label=f"lambda = {fit.slope:.3g} error + {fit.intercept:.3g}  ($R^2$ {fit.r2:.2f})")
    ax.set(xlabel="reconstruction error at the training lambda (MSE)", ylabel="best test-time lambda")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the points, never on them
    fig.tight_layout()
    return fig


def _joined_runs(part: pd.DataFrame, within: float) -> list[pd.DataFrame]:
    """``part`` (sorted by knob value) cut wherever two neighbours' clean accuracies are more than
    ``within`` points apart: a line is drawn only between measured neighbours that close."""
    cuts = np.flatnonzero(np.abs(np.diff(part["clean"].to_numpy())) > within) + 1
    return [part.iloc[a:b] for a, b in zip([0, *cuts], [*cuts, len(part)])]


def plot_robust_vs_clean(panels: dict[tuple[str, str], pd.DataFrame], *, levels: Sequence[float] = (), within: float = 5.0) -> Figure:
    """Robust against clean accuracy for each defence: one panel per ``(row, column)`` key (e.g.
    threat and radius), each a table with columns ``defence``, ``knob``, ``value``, ``clean``,
    ``clean_sd``, ``robust``, ``robust_sd`` (means and spreads over seeds). Every measured knob
    value is a marker with its seed spread; a line joins two neighbouring values only when their
    clean accuracies are at most ``within`` points apart (no interpolation across a wider gap,
    none beyond the ends). ``levels``: clean accuracies marked by dotted vertical lines. The
    legend sits below the panels, off the data."""
    rows = list(dict.fromkeys(r for r, _ in panels))
    cols = list(dict.fromkeys(c for _, c in panels))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.3 * len(cols), 2.9 * len(rows) + 0.5), squeeze=False, sharex=True)
    defences = list(dict.fromkeys(d for table in panels.values() for d in table["defence"]))
    handles = {}
    for (r, c), table in panels.items():
        ax = axes[rows.index(r), cols.index(c)]
        for level in levels:
            ax.axvline(level, color="0.8", ls=":", lw=0.8, zorder=0)
        for i, defence in enumerate(defences):
            part = table[table["defence"] == defence].sort_values("value")
            if part.empty:
                continue
            marker = "o" if i == 0 else "s"
            handles[defence] = ax.errorbar(part["clean"], part["robust"], xerr=part["clean_sd"], yerr=part["robust_sd"], fmt=marker, ms=3.5,
                                           color=f"C{i}", elinewidth=0.7, capsize=0, label=f"{defence} ({part['knob'].iloc[0]})")
            for run in _joined_runs(part, within):
                ax.plot(run["clean"], run["robust"], "-", color=f"C{i}", lw=1.2)
        ax.set_title(f"{r}, {c}", fontsize=8.5)
        ax.tick_params(labelsize=7)
        if cols.index(c) == 0:
            ax.set_ylabel("robust top-1 (%)", fontsize=8)
        if rows.index(r) == len(rows) - 1:
            ax.set_xlabel("clean top-1 (%)", fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(list(handles.values()), [h.get_label() for h in handles.values()], loc="lower center", ncol=len(handles), fontsize=7.5, frameon=False)
    return fig


def plot_radius_sweep(table: pd.DataFrame) -> Figure:
    """White-box accuracy against the L-inf radius (x axis in units of 1/255), one line per
    setting (columns ``setting``, ``eps`` in pixel values, ``robust``): a bounded attack with
    useful gradients brings every setting to zero as the radius grows."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for i, (setting, part) in enumerate(table.groupby("setting", sort=False)):
        part = part.sort_values("eps")
        ax.plot(part["eps"] * 255, part["robust"], "o-", ms=3, lw=1.1, color=f"C{i}", label=setting)
    ax.set_xscale("log", base=2)
    ticks = sorted(table["eps"].unique() * 255)
    ax.set_xticks(ticks, [f"{t:.0f}" for t in ticks])
    ax.set(xlabel="L-inf radius (x 1/255)", ylabel="white-box top-1 (%)")
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Training curves (tables of sdnet.chapters.classification.training_curves)
# ---------------------------------------------------------------------------------------------


def plot_training_curves(panels: dict[str, dict[str, pd.DataFrame]], title: str | None = None) -> Figure:
    """One panel per quantity (``{"training loss": {run: curve}}``), one line per run: its mean
    over seeds per epoch, with the seeds' range as a band (invisible with one seed). A curve is a
    table indexed by epoch with columns ``mean``, ``low`` and ``high``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    runs = list(dict.fromkeys(run for curves in panels.values() for run in curves))
    for ax, (label, curves) in zip(axes[0], panels.items()):
        for run, curve in curves.items():
            color = f"C{runs.index(run)}"
            ax.plot(curve.index, curve["mean"], color=color, label=run)
            ax.fill_between(curve.index, curve["low"], curve["high"], color=color, alpha=0.25, linewidth=0)
        ax.set(xlabel="epoch", ylabel=label)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_stem_mechanism(stem: pd.DataFrame, train_lam: float, severity: int | None = None) -> Figure:
    """What the stem makes of a noisy image (``stem.csv`` of the ``sweep_noise`` stage): per noise,
    against the test-time lambda and one line per number of stem steps, the reconstruction's scaled
    error against the clean image (top; dashed: the noisy input's own) and the code's relative shift
    from the clean image's code (bottom). One severity (default: the smallest measured)."""
    severity = severity if severity is not None else int(stem["severity"].min())
    part = stem[stem["severity"] == severity]
    noises = list(dict.fromkeys(part["noise"]))
    fig, axes = plt.subplots(2, len(noises), figsize=(2.7 * len(noises), 4.6), squeeze=False, sharex=True, sharey="row")
    for j, noise in enumerate(noises):
        mine = part[part["noise"] == noise]
        for i, (steps, curve) in enumerate(mine.groupby("steps")):
            curve = curve.sort_values("lam")
            axes[0, j].plot(curve["lam"], curve["to_clean"], "o-", ms=2.5, color=f"C{i}", label=f"{steps} stem steps")
            axes[1, j].plot(curve["lam"], curve["code_shift"], "o-", ms=2.5, color=f"C{i}")
        at_train = mine[np.isclose(mine["lam"], train_lam)].iloc[0]
        axes[0, j].axhline(at_train["to_clean"] + at_train["gain_over_input"], color="black", ls="--", lw=1, label="the noisy input")
        axes[0, j].set_title(f"{noise}, severity {severity}", fontsize=9)
        axes[1, j].set_xlabel("test-time lambda")
        for ax in axes[:, j]:
            ax.axvline(train_lam, color="gray", ls=":", lw=1)
    axes[0, 0].set_ylabel("A z against the clean image\n(scaled error; lower: closer)", fontsize=8)
    axes[1, 0].set_ylabel("code shift by the noise\n|z(noisy) - z(clean)| / |z(clean)|", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Robustness against its price, and what a defence sees
# ---------------------------------------------------------------------------------------------


def plot_tradeoff(curves: pd.DataFrame, y: str, *, ylabel: str, points: pd.DataFrame | None = None, title: str | None = None, ax=None) -> Figure:
    """Robust (or noisy) accuracy against clean accuracy, one line per ``defence`` (columns
    ``defence``, ``knob``, ``value``, ``clean`` and ``y``), each point labelled with its knob value;
    ``points`` (columns ``defence``, ``clean``, ``y``) are single models drawn as stars. A defence
    is better than another where its curve lies above at the same clean accuracy."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(5.2, 3.8))
    ax = ax if ax is not None else fig.add_subplot()
    for i, (defence, part) in enumerate(curves.groupby("defence", sort=False)):
        part = part.sort_values("value")
        ax.plot(part["clean"], part[y], "o-", ms=3, color=f"C{i}", label=defence)
        knob = part["knob"].iloc[0]
        placed: list[tuple[float, float]] = []
        for _, row in part.iterrows():  # a label only where it does not sit on one already written
            here = (row["clean"], row[y])
            if all(abs(here[0] - a) > 1.2 or abs(here[1] - b) > 0.8 for a, b in placed):
                ax.annotate(f"{knob} {row['value']:g}", here, fontsize=5.5, xytext=(2, 2), textcoords="offset points", color=f"C{i}")
                placed.append(here)
    if points is not None:
        for _, row in points.iterrows():
            ax.plot(row["clean"], row[y], "*", ms=10, color="black")
            ax.annotate(row["defence"], (row["clean"], row[y]), fontsize=7, xytext=(4, -8), textcoords="offset points")
    ax.set(xlabel="clean top-1 accuracy (%)", ylabel=ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def one_per_class(labels: Tensor | Sequence[int], count: int = 4) -> list[int]:
    """Indices of ``count`` images of different classes, the classes spread over those present
    (e.g. classes 0, 3, 6, 9 of ten): the first image of each, for figures that show a few."""
    labels = [int(v) for v in labels]
    classes = sorted(set(labels))
    n = min(count, len(classes))
    picked = [classes[round(i * (len(classes) - 1) / max(n - 1, 1))] for i in range(n)]
    return [labels.index(c) for c in dict.fromkeys(picked)]


def stretch(images: Tensor) -> Tensor:
    """Every image ([N, C, H, W]) min-max scaled to [0, 1] on its own: its structure, whatever its
    contrast (a reconstruction at a large lambda is faint)."""
    flat = images.detach().float().flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    return ((flat - low[:, None]) / (high - low).clamp_min(1e-12)[:, None]).view_as(images)


def plot_image_grid(columns: dict[str, Tensor], row_labels: Sequence[str] | None = None, size: float = 1.15) -> Figure:
    """Images in a grid: one column per entry of ``columns`` (title -> images [N, C, H, W] in
    [0, 1]), one row per image; ``row_labels`` name the rows."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    fig, axes = plt.subplots(n, len(names), figsize=(size * len(names) + (0.8 if row_labels else 0), size * n + 0.3), squeeze=False)
    for j, name in enumerate(names):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(columns[name][i].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
            if j == 0 and row_labels:
                ax.set_ylabel(row_labels[i], fontsize=7)
    fig.tight_layout(h_pad=0.2, w_pad=0.2)
    return fig
