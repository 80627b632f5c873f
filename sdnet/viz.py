"""Figures: dictionary atoms, hidden codes mapped back to the image, and the chapters' plots.

Every plotting function returns a matplotlib Figure and never shows it: a notebook displays it
inline, a script saves it (``fig.savefig(...)``). Figures are made with pyplot, so the caller
closes them (``plt.close(fig)``) when making many.

:func:`reconstruct_through_dictionaries` is the paper's visualisation of SDNet-18-All without
shortcuts, whose blocks are CSC -> BatchNorm -> CSC -> BatchNorm with no ReLU and no residual:
every hidden code there describes its layer's input through that layer's dictionary, so it can
be pushed back to the pixels one dictionary at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from sdnet.csc import CSCConv2d, csc_layers, synthesize
from sdnet.models import Normalize
from sdnet.robustness import LambdaFit, best_lambda, evaluating

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


def plot_atoms(layer_or_weight: CSCConv2d | nn.Conv2d | Tensor, ncols: int = 16, title: str | None = None) -> Figure:
    """The dictionary atoms as a grid of images: RGB for 3 input channels, otherwise the mean
    over channels in grey."""
    atoms = atom_images(layer_or_weight)
    n = len(atoms)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.5 * ncols, 0.5 * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            atom = atoms[i] if atoms.shape[-1] == 3 else atoms[i].mean(-1)
            ax.imshow(atom.numpy(), cmap=None if atoms.shape[-1] == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Hidden codes back to the image, through the dictionaries
# ---------------------------------------------------------------------------------------------


@dataclass
class _Call:
    """One call of a leaf module: what it read and wrote, with the tensors' in-place versions."""

    module: nn.Module | None
    input: Tensor
    input_version: int
    output: Tensor | None = None
    output_version: int = -1

    def feeds(self, other: _Call) -> bool:
        """Whether ``other`` read exactly this call's output: the same tensor object, not
        modified in place in between (a functional op would make a new tensor, an in-place one
        would bump its version)."""
        return other.input is self.output and other.input_version == self.output_version


def _trace(model: nn.Module, x: Tensor) -> list[_Call]:
    """The calls of ``model``'s leaf modules on ``x``, in order, without ``nn.Identity`` (which
    hands its input through unchanged: a block's ReLU when it has no shortcut)."""
    calls: list[_Call] = []

    def before(module, inputs):
        calls.append(_Call(module, inputs[0], inputs[0]._version))

    def after(module, inputs, output):
        calls[-1].output, calls[-1].output_version = output, output._version

    leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]
    hooks = [h for m in leaves for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        with torch.no_grad(), evaluating(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return calls


@dataclass(frozen=True)
class DictionaryLink:
    """A CSC layer whose input is the previous link's code through one BatchNorm (or the image)."""

    name: str
    layer: CSCConv2d
    input_size: tuple[int, int]
    code: Tensor
    batchnorm: nn.BatchNorm2d | None  # the BatchNorm right after this layer, feeding the next link


def dictionary_chain(model: nn.Module, x: Tensor) -> tuple[list[DictionaryLink], Normalize | None]:
    """Run ``model`` on ``x`` (eval mode) and return the CSC layers that form an exact chain from
    the image, with their codes, and the input normalisation in front of them (if any).

    The chain starts at the first CSC layer, which must read the (normalised) image, and goes on
    while the next module calls are exactly one BatchNorm and then a CSC layer reading that
    BatchNorm's output. A ReLU, a residual addition or a pooling in between ends it.
    """
    calls = _trace(model, x)
    names = {id(m): n for n, m in model.named_modules()}
    normalize = calls[0].module if calls and isinstance(calls[0].module, Normalize) else None
    source = calls[0] if normalize is not None else _Call(None, x, x._version, x, x._version)
    rest = calls[1:] if normalize is not None else calls
    links: list[DictionaryLink] = []
    i = 0
    while i < len(rest) and isinstance(rest[i].module, CSCConv2d) and source.feeds(rest[i]):
        csc = rest[i]
        after = rest[i + 1] if i + 1 < len(rest) else None
        bn = after.module if after is not None and isinstance(after.module, nn.BatchNorm2d) and csc.feeds(after) else None
        size = (csc.input.shape[-2], csc.input.shape[-1])
        links.append(DictionaryLink(names[id(csc.module)], csc.module, size, csc.output, bn))
        if bn is None:
            break
        source, i = after, i + 2
    return links, normalize


def invert_batchnorm(bn: nn.BatchNorm2d, y: Tensor) -> Tensor:
    """The input of an eval-mode BatchNorm from its output:
    ``x = (y - beta) / gamma * sqrt(running_var + eps) + running_mean``."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("cannot invert a BatchNorm without running statistics (track_running_stats=False)")
    shape = (1, -1, 1, 1)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = torch.sqrt(bn.running_var + bn.eps) / gamma
    return (y - beta.view(shape)) * scale.view(shape) + bn.running_mean.view(shape)


@torch.no_grad()
def reconstruct_through_dictionaries(model: nn.Module, x: Tensor, upto: int | None = None) -> list[Tensor]:
    """Each CSC layer's code mapped back to image space, layer by layer, for layers ``0..upto``.

    For layer ``l`` (0 = the stem): start from its code ``z_l``; apply its dictionary,
    ``A_l(z_l)`` (a transposed convolution with the output padding of the layer's input size),
    which approximates the layer's input; undo the BatchNorm that produced that input (with its
    running statistics); repeat with layer ``l - 1`` down to the stem; finally undo the input
    normalisation. Returns one ``[N, 3, H, W]`` batch per layer, in pixel units (roughly [0, 1];
    not clipped). Layer 0's result is the stem's own ``reconstruction()`` in pixel units.

    This is exact only when every layer's input is the previous code through BatchNorm alone:
    SDNet-18/34-All without shortcuts and with the CIFAR stem (``build(..., shortcut=False)``);
    asking for a layer beyond such a chain is an error.
    """
    n_csc = len(csc_layers(model))
    if n_csc == 0:
        raise ValueError("the model has no CSC layer")
    last = n_csc - 1 if upto is None else upto
    if not 0 <= last < n_csc:
        raise ValueError(f"upto must be in 0..{n_csc - 1} (the model's CSC layers), got {upto}")
    links, normalize = dictionary_chain(model, x)
    if last >= len(links):
        blocked = csc_layers(model)[len(links)][0]
        raise ValueError(
            f"CSC layer {blocked!r} does not read the previous code through a BatchNorm alone (a ReLU, "
            "residual connection or pooling sits in between), so its code cannot be mapped back through "
            f"the dictionaries; only layers 0..{len(links) - 1} can. Use an SDNet-All without shortcuts "
            "and with the CIFAR stem: build(..., shortcut=False)"
        )
    images = []
    for l in range(last + 1):
        r = links[l].code
        for j in range(l, -1, -1):
            layer = links[j].layer
            padding = layer.output_padding(links[j].input_size)
            r = synthesize(r.to(layer.weight.dtype), layer.weight, layer.stride, layer.padding, padding)
            if j > 0:
                r = invert_batchnorm(links[j - 1].batchnorm, r)
        images.append(r * normalize.std + normalize.mean if normalize is not None else r)
    return images


def plot_layer_reconstructions(
    x: Tensor,
    reconstructions: Sequence[Tensor],
    names: Sequence[str] | None = None,
    n_images: int = 4,
    *,
    rescale: bool = False,
) -> Figure:
    """Rows: images; columns: the input, then its reconstruction from each layer's code.

    Pixel values are clipped to [0, 1]; ``rescale=True`` min-max scales every image on its own
    instead, which shows the structure left in low-contrast reconstructions of deep layers.
    """
    n_images = min(n_images, len(x))
    cols = len(reconstructions) + 1
    titles = ["input", *(names if names is not None else [f"layer {l}" for l in range(len(reconstructions))])]
    fig, axes = plt.subplots(n_images, cols, figsize=(1.1 * cols, 1.15 * n_images), squeeze=False)
    for j, batch in enumerate([x, *reconstructions]):
        for i in range(n_images):
            image = batch[i].detach().float().cpu()
            if rescale:
                image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
            image = image.clamp(0, 1).permute(1, 2, 0).numpy()
            axes[i, j].imshow(image if image.shape[-1] == 3 else image.mean(-1), cmap=None if image.shape[-1] == 3 else "gray")
            axes[i, j].axis("off")
        axes[0, j].set_title(titles[j], fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------
# Sparsity of the codes
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def code_sparsity_per_layer(model: nn.Module, x: Tensor) -> dict[str, float]:
    """Mean fraction of exactly-zero code entries of every CSC layer on the batch ``x``."""
    with evaluating(model):
        model(x)
    return {name: layer.sparsity.mean().item() for name, layer in csc_layers(model)}


def plot_sparsity(sparsity: dict[str, float]) -> Figure:
    """Bar plot of :func:`code_sparsity_per_layer`, layers in forward order."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(sparsity)), 3.0))
    ax.bar(range(len(sparsity)), list(sparsity.values()))
    ax.set_xticks(range(len(sparsity)), list(sparsity), rotation=90, fontsize=7)
    ax.set(ylabel="fraction of zero code entries", ylim=(0, 1))
    fig.tight_layout()
    return fig


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
    table: pd.DataFrame, model: str | None = None, train_lam: float | None = None, *, baseline: pd.DataFrame | None = None
) -> Figure:
    """Accuracy against the test-time lambda: one panel per noise, one line per severity.

    ``table`` is a :func:`sdnet.robustness.sweep` table. The clean condition (noise ``"clean"``),
    if present, is drawn in every panel in black; ``train_lam`` is marked by a vertical line;
    ``baseline`` (e.g. the ResNet's rows) adds its accuracy per severity as dotted lines.
    """
    rows = _one_model(table, model)
    noises = [n for n in rows["noise"].unique() if n != "clean"] or ["clean"]
    clean = rows[rows["noise"] == "clean"]
    severities = sorted(rows.loc[rows["noise"] != "clean", "severity"].unique())
    colours = dict(zip(severities, plt.cm.viridis(np.linspace(0.0, 0.9, max(len(severities), 1)))))
    fig, axes = plt.subplots(1, len(noises), figsize=(3.6 * len(noises), 3.2), squeeze=False, sharey=True)
    for ax, noise in zip(axes[0], noises):
        if not clean.empty:
            ax.plot(clean["lam"], clean["accuracy"], "k.-", lw=1, label="clean")
        noisy = rows[rows["noise"] == noise] if noise != "clean" else rows.iloc[:0]
        for severity, curve in noisy.groupby("severity"):
            ax.plot(curve["lam"], curve["accuracy"], "o-", ms=3, color=colours[severity], label=f"severity {severity}")
            if baseline is not None:
                ref = baseline[(baseline["noise"] == noise) & (baseline["severity"] == severity)]
                if not ref.empty:
                    ax.axhline(ref["accuracy"].iloc[0], color=colours[severity], ls=":", lw=1)
        if train_lam is not None:
            ax.axvline(train_lam, color="gray", ls="--", lw=1, label=f"training lambda {train_lam:g}")
        ax.set(title=noise, xlabel="test-time lambda")
    axes[0, 0].set_ylabel("top-1 accuracy (%)")
    axes[0, -1].legend(fontsize=7)
    if baseline is not None:
        fig.suptitle("dotted: baseline accuracy at the same severity", fontsize=8)
    fig.tight_layout()
    return fig


def plot_best_lambda_vs_severity(table: pd.DataFrame, model: str | None = None) -> Figure:
    """The best test-time lambda against severity, one line per noise.

    ``table`` is a :func:`sdnet.robustness.best_lambda` table, or a sweep table (then the best
    lambda is computed here).
    """
    best = table if "best_lam" in table.columns else best_lambda(table)
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
    errors: Sequence[float], best_lambdas: Sequence[float], fit: LambdaFit, labels: Sequence[str] | None = None
) -> Figure:
    """The points (reconstruction error at the training lambda, best lambda) and the fitted line."""
    errors, best_lambdas = np.asarray(errors, dtype=float), np.asarray(best_lambdas, dtype=float)
    fit = LambdaFit(*fit)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.scatter(errors, best_lambdas, s=18, zorder=3)
    for e, lam, label in zip(errors, best_lambdas, labels or []):
        ax.annotate(label, (e, lam), fontsize=6, xytext=(3, 3), textcoords="offset points")
    span = np.linspace(errors.min(), errors.max(), 50)
    ax.plot(span, fit.predict(span), "r-", label=f"lambda = {fit.slope:.3g} error + {fit.intercept:.3g}  ($R^2$ {fit.r2:.2f})")
    ax.set(xlabel="reconstruction error at the training lambda (MSE)", ylabel="best test-time lambda")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_pgd_vs_lambda(table: pd.DataFrame) -> Figure:
    """Robust accuracy against the test-time lambda: one panel per norm and eps (columns
    ``norm`` and ``eps``, where present), per model a solid white-box line, a dashed transfer line
    (when it differs) and a dotted clean line. ``table``: rows of
    :func:`sdnet.attacks.pgd_vs_lambda` with ``model``, ``norm`` and ``eps`` columns added."""
    by = [c for c in ("norm", "eps") if c in table.columns]
    panels = list(table[by].drop_duplicates().itertuples(index=False, name=None)) if by else [()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, key in zip(axes[0], panels):
        panel = table
        for column, value in zip(by, key):
            panel = panel[panel[column] == value]
        groups = panel.groupby("model") if "model" in panel.columns else [("", panel)]
        for (name, part), colour in zip(groups, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
            part = part.sort_values("lam")
            prefix = f"{name} " if name else ""
            ax.plot(part["lam"], part["white_box"], "o-", color=colour, label=f"{prefix}white-box")
            if not np.allclose(part["transfer"], part["white_box"]):
                ax.plot(part["lam"], part["transfer"], "s--", color=colour, label=f"{prefix}transfer")
            ax.plot(part["lam"], part["clean"], ":", color=colour, lw=1, label=f"{prefix}clean")
        title = " ".join(f"eps {v:.3g}" if c == "eps" else str(v) for c, v in zip(by, key))
        ax.set(title=f"PGD {title}".strip(), xlabel="test-time lambda")
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig
