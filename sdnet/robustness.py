"""Robustness to noise through the test-time lambda: sweeps, their tables, and the lambda-error line.

The paper's observation: a CSC layer trained with lambda = 0.1 still solves a sparse coding
problem at test time, and on noisy inputs a larger lambda raises accuracy (and lowers it again
once it removes too much). Its argument (stable recovery: a sparser code keeps the strong
structures and drops the noise) is measured here, not assumed: :func:`stem_denoising` compares
what the stem makes of a noisy image with what it makes of the clean one. The best lambda grows
with the noise, roughly linearly in the layer's reconstruction error at the training lambda, a
number that can be measured on the input alone.

Reading order:

- :func:`sweep` runs :func:`sdnet.evaluate.lambda_sweep` for several models and noise
  conditions and returns a tidy table (one row per model, condition and lambda), with the
  per-image hits on request (:func:`recording_hits`);
- :func:`best_lambda_table` summarises it: the best lambda of each condition (the paper's figures);
- :func:`fit_lambda_vs_error` is the authors' line through (reconstruction error, best lambda),
  which :mod:`sdnet.adaptive` uses to choose lambda from the input itself;
- :func:`filter_sweep` is the rival: the same accuracies for a model behind a test-time filter;
- :func:`stem_denoising` and :func:`stem_steps` measure the mechanism.

Batches are any re-iterable collection of ``(images, labels)``: images float in [0, 1],
``[N, 3, H, W]`` (the models normalise inside), labels int64. Accuracies are top-1 in percent;
``recon_error`` is the probed CSC layer's ``reconstruction_mse`` (error per input value).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from sdnet.evaluate import Batches, LayerChoice, lambda_sweep

# Column order of the tidy tables (one row per model, condition and lambda); with ``per_image``,
# a last column ``correct`` holds each row's per-image hits (a bool array, in the batches' order).
LABELS = ("model", "noise", "severity")
COLUMNS = (*LABELS, "lam", "top1", "recon_error", "sparsity")
CORRECT = "correct"


@contextlib.contextmanager
def recording_hits(model: nn.Module) -> Iterator[list[Tensor]]:
    """The top-1 class of every image the forward passes of ``model`` see inside the block, one
    tensor per call, in order: the per-image view of what :func:`sdnet.evaluate.evaluate` counts
    (the same ``topk`` on float logits as its tally, so ties break the same way)."""
    seen: list[Tensor] = []

    def record(module, inputs, output):
        seen.append(output.detach().float().topk(min(5, output.shape[1]), dim=1).indices[:, 0].cpu())

    handle = model.register_forward_hook(record)
    try:
        yield seen
    finally:
        handle.remove()


def hits_per_pass(seen: list[Tensor], batches: Batches, passes: int) -> np.ndarray:
    """The predictions :func:`recording_hits` saw over ``passes`` passes through ``batches``,
    compared with their labels: bool array ``[passes, images]``."""
    labels = torch.cat([y for _, y in batches]).cpu()
    predicted = torch.cat(seen)
    if len(predicted) != passes * len(labels):
        raise RuntimeError(f"recorded {len(predicted)} predictions, expected {passes} passes of {len(labels)} images")
    return (predicted.view(passes, len(labels)) == labels).numpy()


def tidy(rows: Iterable[Mapping[str, float]], **labels) -> pd.DataFrame:
    """Rows of :func:`sdnet.evaluate.lambda_sweep` as a table with the columns of
    :data:`COLUMNS` (label columns in front; NaN statistics where nothing was probed)::

        tidy(lambda_sweep(model, noisy, lambdas, probe=True), model="sdnet18", noise="gaussian", severity=3)
    """
    frame = pd.DataFrame([{**labels, **row} for row in rows])
    for column in ("recon_error", "sparsity"):
        if column not in frame.columns:
            frame[column] = np.nan
    return frame[[c for c in (*COLUMNS, CORRECT) if c in frame.columns]]


def sweep(
    models: Mapping[str, nn.Module],
    conditions: Mapping[tuple[str, int], Batches],
    lambdas: Sequence[float],
    *,
    layers: LayerChoice = None,
    progress: bool = False,
    per_image: bool = False,
    **options,
) -> pd.DataFrame:
    """Accuracy at every test-time lambda for every model and every ``(noise, severity)`` condition.

    ``lambdas`` go to the CSC layers ``layers`` chooses (default: all); the first of them is
    probed for its reconstruction error and sparsity. ``options`` go to
    :func:`sdnet.evaluate.evaluate` (``device``, ``bf16``, ...). By convention the clean test set
    is the condition ``("clean", 0)``. Returns the tidy table of :data:`COLUMNS`; ``per_image``
    adds the column ``correct`` (which images each row got right: what paired comparisons and
    bootstraps over images need).
    """
    work = [(name, key) for name in models for key in conditions]
    if progress:
        from tqdm.auto import tqdm

        work = tqdm(work, desc="lambda sweep")
    frames = []
    for name, (noise, severity) in work:
        batches = conditions[(noise, severity)]
        with recording_hits(models[name]) as seen:
            rows = lambda_sweep(models[name], batches, lambdas, layers=layers, probe=True, **options)
        if per_image:  # a model without lambda ran once for every row
            hits = hits_per_pass(seen, batches, len(seen) // len(batches))
            for row, h in zip(rows, hits if len(hits) == len(rows) else [hits[0]] * len(rows)):
                row[CORRECT] = h
        frames.append(tidy(rows, model=name, noise=noise, severity=severity))
    return pd.concat(frames, ignore_index=True)


def _groups(table: pd.DataFrame) -> list[str]:
    """The label columns the table has (a single-model table may lack ``model``)."""
    return [c for c in LABELS if c in table.columns]


def best_lambda_table(table: pd.DataFrame, *, train_lam: float | None = None) -> pd.DataFrame:
    """Per model, noise and severity: the lambda of highest accuracy (the smallest on ties).

    Columns: the labels, ``best_lam``, ``best_top1``; with ``train_lam`` also ``top1_train_lam``
    and ``recon_error_train_lam`` (the x of :func:`fit_lambda_vs_error`). A model without CSC
    layers (NaN sparsity) has no best lambda: ``best_lam`` is NaN there.
    """
    keys = _groups(table)
    ordered = table.sort_values(["top1", "lam"], ascending=[False, True], kind="stable")
    best = ordered.drop_duplicates(keys).sort_values(keys, kind="stable").reset_index(drop=True)
    best.loc[best["sparsity"].isna(), "lam"] = np.nan
    best = best[keys + ["lam", "top1"]].rename(columns={"lam": "best_lam", "top1": "best_top1"})
    if train_lam is not None:
        at_train = table[np.isclose(table["lam"], train_lam)]
        if at_train.empty:
            raise ValueError(f"the table has no rows at the training lambda {train_lam}")
        at_train = at_train[keys + ["top1", "recon_error"]].rename(columns={"top1": "top1_train_lam", "recon_error": "recon_error_train_lam"})
        best = best.merge(at_train, on=keys, how="left")
    return best


# ---------------------------------------------------------------------------------------------
# Best lambda against reconstruction error
# ---------------------------------------------------------------------------------------------


class LambdaFit(NamedTuple):
    """``best lambda ~= slope * error + intercept``, ``error`` the probed layer's
    ``reconstruction_mse`` at the training lambda; ``r2`` is the fit's coefficient of determination."""

    slope: float
    intercept: float
    r2: float

    def predict(self, error):
        """The lambda the line gives for ``error`` (a number, array or tensor)."""
        return self.slope * error + self.intercept


def fit_lambda_vs_error(errors: Sequence[float], best_lambdas: Sequence[float]) -> LambdaFit:
    """Least-squares line of the best lambda against the reconstruction error (the authors' fit).

    One point per noise condition: the mean reconstruction error of the probed CSC layer at the
    training lambda, and the condition's best test-time lambda (e.g. the columns
    ``recon_error_train_lam`` and ``best_lam`` of :func:`best_lambda_table`).
    """
    e, lam = np.asarray(errors, dtype=float), np.asarray(best_lambdas, dtype=float)
    if e.shape != lam.shape or e.ndim != 1:
        raise ValueError(f"errors and best_lambdas must be two lists of one length, got shapes {e.shape} and {lam.shape}")
    if not (np.isfinite(e).all() and np.isfinite(lam).all()):
        raise ValueError("errors and best_lambdas must be finite (a model without CSC layers has no error to fit)")
    if len(np.unique(e)) < 2:
        raise ValueError("fit_lambda_vs_error needs at least two different errors")
    slope, intercept = np.polyfit(e, lam, 1)
    residual = ((lam - (slope * e + intercept)) ** 2).sum()
    total = ((lam - lam.mean()) ** 2).sum()
    # All best lambdas equal: the horizontal line explains them exactly.
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return LambdaFit(float(slope), float(intercept), float(r2))


# ---------------------------------------------------------------------------------------------
# The rival: a test-time filter in front of a model without lambda
# ---------------------------------------------------------------------------------------------


def filter_sweep(
    model: nn.Module,
    conditions: Mapping[tuple[str, int], Batches],
    filters: Mapping[str, Sequence[float]],
    *,
    progress: bool = False,
    per_image: bool = False,
    **options,
) -> pd.DataFrame:
    """Accuracy of ``model`` behind each test-time filter (:mod:`sdnet.denoise`) at each strength,
    on every ``(noise, severity)`` condition: the rival of :func:`sweep`'s lambda.

    ``filters`` maps a filter kind (``"blur"``: sigma; ``"median"``: passes) to its strengths;
    strength 0 (the model undefended) is always included. ``options`` go to
    :func:`sdnet.evaluate.evaluate`. Columns: ``filter, strength, noise, severity, top1`` (and
    ``correct`` with ``per_image``, as in :func:`sweep`).
    """
    from sdnet.denoise import apply_filter
    from sdnet.evaluate import evaluate

    work = [(kind, float(s), key) for kind, strengths in filters.items() for s in sorted({0.0, *map(float, strengths)}) for key in conditions]
    if progress:
        from tqdm.auto import tqdm

        work = tqdm(work, desc="test-time filters")
    rows = []
    for kind, strength, (noise, severity) in work:
        filtered = [(apply_filter(x.float(), kind, strength), y) for x, y in conditions[(noise, severity)]]
        with recording_hits(model) as seen:
            top1 = evaluate(model, filtered, **options)["top1"]
        rows.append({"filter": kind, "strength": strength, "noise": noise, "severity": severity, "top1": top1})
        if per_image:
            rows[-1][CORRECT] = hits_per_pass(seen, filtered, 1)[0]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# What the first layer makes of an input
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def stem_reconstructions(model: nn.Module, x: Tensor, lambdas: Sequence[float]) -> Tensor:
    """The first CSC layer's reconstruction ``A z`` of ``x`` (images in [0, 1]) at each test-time
    lambda, mapped back to pixels through the model's input normalisation and clipped to [0, 1]:
    shape ``[len(lambdas), N, C, H, W]``. What the network still sees of the image at that lambda."""
    from sdnet.csc import csc_layers
    from sdnet.evaluate import at_lambda, evaluating, model_device

    layers = csc_layers(model)
    if not layers:
        raise ValueError("the model has no CSC layer to reconstruct with")
    name, stem = layers[0]
    normalize = getattr(model, "normalize", None)
    x = x.to(model_device(model)).float()
    views = []
    with evaluating(model):
        for lam in lambdas:
            with at_lambda(model, lam, [name]):
                model(x)
            recon = stem.reconstruction().float()
            if normalize is not None:
                recon = recon * normalize.std + normalize.mean
            views.append(recon.clamp(0, 1).cpu())
    return torch.stack(views)


# ---------------------------------------------------------------------------------------------
# The mechanism: does a larger lambda make the stem's output for a noisy image closer to the clean one?
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def stem_steps(model: nn.Module, n_steps: int) -> Iterator[nn.Module]:
    """The first CSC layer (the stem) runs ``n_steps`` FISTA steps inside the block, the other
    layers as trained. The paper's argument (stable recovery) is about the *solved* sparse code;
    the trained stem runs 2 steps, so this asks whether a better-solved stem denoises better."""
    from sdnet.csc import csc_layers

    layers = csc_layers(model)
    if not layers:
        raise ValueError("the model has no CSC layer")
    stem = layers[0][1]
    saved = stem.n_steps
    try:
        stem.n_steps = int(n_steps)
        yield model
    finally:
        stem.n_steps = saved


class _LayerDone(Exception):
    """Raised by a forward hook to stop a forward pass once the layer of interest has run."""


def run_until(model: nn.Module, layer: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Run ``model`` on ``x`` only as far as ``layer`` (the rest of the forward pass is cut), and
    return the layer's input and output: the layer sees exactly what the network gives it."""
    seen: list[Tensor] = []

    def stop(module, inputs, output):
        seen.extend((inputs[0], output))
        raise _LayerDone

    hook = layer.register_forward_hook(stop)
    try:
        model(x)
    except _LayerDone:
        pass
    finally:
        hook.remove()
    return seen[0], seen[1]


def _stem_codes(model: nn.Module, stem: nn.Module, x: Tensor, lam: float) -> tuple[Tensor, Tensor, Tensor]:
    """The stem's input (what the network feeds it: the normalised image), its code and its
    reconstruction at ``lam``, float32."""
    saved = stem.lam
    try:
        stem.lam = float(lam)
        inputs, z = run_until(model, stem, x)
        return inputs, z.flatten(1), stem.reconstruction()
    finally:
        stem.lam = saved


# The measures of `stem_denoising`, what each says, and its direction.
STEM_MEASURES = {
    "to_clean": "scaled error of the reconstruction of the noisy image against the clean image (lower: closer)",
    "to_noisy": "scaled error of the reconstruction of the noisy image against the noisy input (lower: it keeps the noise)",
    "gain_over_input": "the noisy input's own scaled error against the clean image minus to_clean (above 0: the stem removed more noise than image)",
    "code_shift": "||z(noisy) - z(clean)|| / ||z(clean)||, both coded at the same lambda and steps (lower: the noise moves the code less)",
}


@torch.no_grad()
def stem_denoising(model: nn.Module, clean: Tensor, noisy: Tensor, lambdas: Sequence[float], steps: Sequence[int]) -> pd.DataFrame:
    """What the stem makes of noisy images against the same images clean, at each test-time lambda
    and number of stem steps (float32, on the model's device; images in [0, 1], the same images in
    the same order in ``clean`` and ``noisy``).

    Scale-invariant, as :func:`sdnet.reconstruction.scaled_error` (1 - max(correlation, 0)^2: the
    error after the best non-negative scale and colour offset), so a reconstruction that keeps the
    structure at a lower contrast, as a larger lambda's does, is not counted as far. Columns:
    ``lam, steps, image`` and the :data:`STEM_MEASURES`, one row per image.
    """
    from sdnet.csc import csc_layers
    from sdnet.evaluate import evaluating, model_device
    from sdnet.reconstruction import scaled_error

    stem = csc_layers(model)[0][1]
    device = model_device(model)
    clean, noisy = clean.to(device).float(), noisy.to(device).float()
    frames = []
    with evaluating(model):
        for n in steps:
            with stem_steps(model, n):
                for lam in lambdas:
                    x_clean, z_clean, _ = _stem_codes(model, stem, clean, lam)
                    x_noisy, z_noisy, recon = _stem_codes(model, stem, noisy, lam)
                    to_clean = scaled_error(x_clean, recon)
                    shift = (z_noisy - z_clean).norm(dim=1) / z_clean.norm(dim=1).clamp_min(1e-12)
                    frames.append(pd.DataFrame({
                        "lam": float(lam), "steps": int(n), "image": np.arange(len(clean)),
                        "to_clean": to_clean.cpu().numpy(), "to_noisy": scaled_error(x_noisy, recon).cpu().numpy(),
                        "gain_over_input": (scaled_error(x_clean, x_noisy) - to_clean).cpu().numpy(),
                        "code_shift": shift.cpu().numpy(),
                    }))
    return pd.concat(frames, ignore_index=True)
