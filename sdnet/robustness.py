"""Robustness to noise through the test-time lambda, and choosing lambda from the input itself.

The paper's observation: a CSC layer trained with lambda = 0.1 reconstructs its input; given a
noisy input, a larger lambda at test time keeps the strong structures and drops the noise, so
accuracy goes up (and down again once lambda also removes the signal). The best lambda grows with
the noise, roughly linearly in the layer's reconstruction error at the training lambda, a number
that can be measured on the input alone.

Reading order:

- :func:`accuracy_vs_lambda` sweeps the test-time lambda of one model on one set of batches;
  :func:`sweep` does it for several models and noise conditions and returns a tidy table;
- :func:`best_lambda` and :func:`severity_averaged` summarise that table (the paper's figures and
  its CIFAR-10-C table); :func:`fit_lambda_vs_error` is the authors' line through
  (reconstruction error, best lambda);
- :class:`AdaptiveLambda` goes beyond the paper: an inference mode that picks lambda per input
  (or per batch) from that line without knowing the noise; :func:`compare_adaptive` measures it
  against the training lambda and the oracle best lambda.

Batches are any re-iterable collection of ``(images, labels)``: images float in [0, 1],
``[N, 3, H, W]`` (the models normalise inside), labels int64. Accuracies are top-1 in percent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from sdnet.csc import CSCConv2d, csc_lambda, csc_layers

Batches = Iterable[tuple[Tensor, Tensor]]
# Which CSC layers a test-time lambda applies to, as in `sdnet.csc_lambda`: None (all), a list
# of qualified module names, or a predicate (name, layer) -> bool.
LayerChoice = Sequence[str] | Callable[[str, CSCConv2d], bool] | None

# Column order of the tidy tables (one row per model, condition and lambda).
LABELS = ("model", "noise", "severity")
COLUMNS = (*LABELS, "lam", "accuracy", "recon_error", "sparsity")


# ---------------------------------------------------------------------------------------------
# Small helpers shared with sdnet.attacks
# ---------------------------------------------------------------------------------------------


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (frozen BatchNorm statistics) for the block, then the previous mode again."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def chosen_layers(model: nn.Module, layers: LayerChoice = None) -> list[tuple[str, CSCConv2d]]:
    """The CSC layers ``layers`` selects, in order of definition (the rule of ``csc_lambda``)."""
    found = csc_layers(model)
    if layers is None:
        return found
    if callable(layers):
        return [(n, m) for n, m in found if layers(n, m)]
    unknown = set(layers) - {n for n, _ in found}
    if unknown:
        raise ValueError(f"not CSC layers of this model: {sorted(unknown)}")
    return [(n, m) for n, m in found if n in layers]


def at_lambda(model: nn.Module, lam: float | None, layers: LayerChoice = None) -> contextlib.AbstractContextManager:
    """``csc_lambda(model, lam, layers)``, or nothing for ``lam=None`` or a model without CSC
    layers (a ResNet has no lambda, so one table can hold both kinds of model)."""
    if lam is None or not csc_layers(model):
        return contextlib.nullcontext(model)
    return csc_lambda(model, float(lam), layers)


def require_reiterable(batches: Batches) -> None:
    """A sweep reads the batches once per lambda: a generator would be empty after the first."""
    if iter(batches) is batches:
        raise TypeError("batches must be re-iterable (a list of (images, labels) or a DataLoader), not a one-shot iterator")


def reconstruction_mse(layer: CSCConv2d) -> Tensor:
    """Per-sample mean squared reconstruction error ``||x - A z||^2 / numel(x)`` of the layer's
    last batch, shape [N].

    The layer's own ``reconstruction_error`` is a sum over the input; dividing by the number of
    input values makes the number comparable across image sizes (CIFAR vs ImageNet stems).
    """
    return layer.reconstruction_error / layer.reconstruction()[0].numel()


# ---------------------------------------------------------------------------------------------
# Accuracy against the test-time lambda
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def _evaluate(model: nn.Module, batches: Batches, device: torch.device, probe: CSCConv2d | None) -> dict[str, float]:
    """Accuracy over ``batches``, and the mean reconstruction error and sparsity of ``probe``."""
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n, errors, sparsity = 0, [], []
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        correct += (model(x).argmax(1) == y).sum()
        n += len(y)
        if probe is not None:
            errors.append(reconstruction_mse(probe))
            sparsity.append(probe.sparsity)
    if n == 0:
        raise ValueError("no batches to evaluate")
    nan = float("nan")
    return {
        "accuracy": 100.0 * correct.item() / n,  # one host read per pass, not one per batch
        "recon_error": torch.cat(errors).mean().item() if errors else nan,
        "sparsity": torch.cat(sparsity).mean().item() if sparsity else nan,
    }


def accuracy_vs_lambda(
    model: nn.Module,
    batches: Batches,
    lambdas: Sequence[float],
    *,
    device: str | torch.device | None = None,
    layers: LayerChoice = None,
) -> list[dict[str, float]]:
    """Top-1 accuracy at every test-time lambda, with the first chosen CSC layer's statistics.

    ``lambdas`` is set on the CSC layers ``layers`` selects (default: all) and restored after.
    Each row: ``lam``, ``accuracy`` (%), ``recon_error`` (the mean of :func:`reconstruction_mse`
    of the first chosen layer) and ``sparsity`` (its mean fraction of zero code entries).

    A model without CSC layers (a ResNet baseline) has no lambda: it is evaluated once and that
    accuracy repeated for every lambda, with NaN statistics, so the table lines up with SDNet's.
    The model runs in eval mode; its previous mode is restored.
    """
    require_reiterable(batches)
    device = torch.device(device) if device is not None else model_device(model)
    if not csc_layers(model):
        with evaluating(model):
            row = _evaluate(model, batches, device, probe=None)
        return [{"lam": float(lam), **row} for lam in lambdas]
    selected = chosen_layers(model, layers)
    if not selected:
        raise ValueError("accuracy_vs_lambda: `layers` selects no CSC layer of this model")
    probe = selected[0][1]
    rows = []
    with evaluating(model):
        for lam in lambdas:
            with at_lambda(model, lam, layers):
                rows.append({"lam": float(lam), **_evaluate(model, batches, device, probe)})
    return rows


def tidy(rows: Iterable[Mapping[str, float]], **labels) -> pd.DataFrame:
    """Rows of :func:`accuracy_vs_lambda` as a table, with constant label columns in front::

        tidy(accuracy_vs_lambda(model, noisy, lambdas), model="sdnet18", noise="gaussian", severity=3)
    """
    frame = pd.DataFrame([{**labels, **row} for row in rows])
    ordered = [c for c in COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]]


def sweep(
    models: Mapping[str, nn.Module],
    conditions: Mapping[tuple[str, int], Batches],
    lambdas: Sequence[float],
    *,
    device: str | torch.device | None = None,
    layers: LayerChoice = None,
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`accuracy_vs_lambda` for every model and every ``(noise, severity)`` condition.

    Returns the tidy table with columns ``model, noise, severity, lam, accuracy, recon_error,
    sparsity``. By convention the clean test set is the condition ``("clean", 0)``.
    """
    work = [(name, key) for name in models for key in conditions]
    if progress:
        from tqdm.auto import tqdm

        work = tqdm(work, desc="lambda sweep")
    frames = []
    for name, (noise, severity) in work:
        rows = accuracy_vs_lambda(models[name], conditions[(noise, severity)], lambdas, device=device, layers=layers)
        frames.append(tidy(rows, model=name, noise=noise, severity=severity))
    return pd.concat(frames, ignore_index=True)


def _groups(table: pd.DataFrame) -> list[str]:
    """The label columns the table has (a single-model table may lack ``model``)."""
    return [c for c in LABELS if c in table.columns]


def best_lambda(table: pd.DataFrame, *, train_lam: float | None = None) -> pd.DataFrame:
    """Per model, noise and severity: the lambda of highest accuracy (the smallest on ties).

    Columns: the labels, ``best_lam``, ``best_accuracy``; with ``train_lam`` also
    ``accuracy_train_lam`` and ``recon_error_train_lam`` (the x of :func:`fit_lambda_vs_error`).
    A model without CSC layers (NaN sparsity) has no best lambda: ``best_lam`` is NaN there.
    """
    keys = _groups(table)
    ordered = table.sort_values(["accuracy", "lam"], ascending=[False, True], kind="stable")
    best = ordered.drop_duplicates(keys).sort_values(keys, kind="stable").reset_index(drop=True)
    best.loc[best["sparsity"].isna(), "lam"] = np.nan
    best = best[keys + ["lam", "accuracy"]].rename(columns={"lam": "best_lam", "accuracy": "best_accuracy"})
    if train_lam is not None:
        at_train = table[np.isclose(table["lam"], train_lam)]
        if at_train.empty:
            raise ValueError(f"the table has no rows at the training lambda {train_lam}")
        at_train = at_train[keys + ["accuracy", "recon_error"]].rename(
            columns={"accuracy": "accuracy_train_lam", "recon_error": "recon_error_train_lam"}
        )
        best = best.merge(at_train, on=keys, how="left")
    return best


def severity_averaged(table: pd.DataFrame, train_lam: float) -> pd.DataFrame:
    """Accuracy averaged over the noisy severities (>= 1), per model and noise: at the training
    lambda, and with lambda tuned per severity at test time (the paper's CIFAR-10-C table).

    Columns: ``model, noise, accuracy_train_lam, accuracy_tuned_lam``.
    """
    best = best_lambda(table[table["severity"] > 0], train_lam=train_lam)
    keys = [c for c in ("model", "noise") if c in best.columns]
    averaged = best.groupby(keys, as_index=False)[["accuracy_train_lam", "best_accuracy"]].mean()
    return averaged.rename(columns={"best_accuracy": "accuracy_tuned_lam"})


# ---------------------------------------------------------------------------------------------
# Best lambda against reconstruction error
# ---------------------------------------------------------------------------------------------


class LambdaFit(NamedTuple):
    """``best lambda ~= slope * error + intercept``, ``error`` as in :func:`reconstruction_mse`
    at the training lambda; ``r2`` is the fit's coefficient of determination."""

    slope: float
    intercept: float
    r2: float

    def predict(self, error):
        """The lambda the line gives for ``error`` (a number, array or tensor)."""
        return self.slope * error + self.intercept


def fit_lambda_vs_error(errors: Sequence[float], best_lambdas: Sequence[float]) -> LambdaFit:
    """Least-squares line of the best lambda against the reconstruction error (the authors' fit).

    One point per noise condition: the mean reconstruction error of the first CSC layer at the
    training lambda, and the condition's best test-time lambda (e.g. the columns
    ``recon_error_train_lam`` and ``best_lam`` of :func:`best_lambda`).
    Returns ``(slope, intercept, r2)`` as a :class:`LambdaFit`.
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
# Adaptive lambda: chosen from the input's own reconstruction error
# ---------------------------------------------------------------------------------------------


class _ProbeDone(Exception):
    """Raised by a forward hook to stop the forward pass once the probed layer has run."""


class AdaptiveLambda(nn.Module):
    """Inference with lambda chosen per input from its reconstruction error, noise unknown.

    For a batch ``x``:

    1. *probe*: run the network at the training lambda up to the first chosen CSC layer only (the
       forward pass is cut there) and read each sample's :func:`reconstruction_mse`;
    2. *choose*: ``per="sample"``: every sample gets ``fit.predict(its error)``;
       ``per="batch"``: the whole batch gets ``fit.predict(mean error)``. The value is rounded to
       the nearest lambda of ``lambdas`` (so also clipped to the grid's range);
    3. *classify*: the samples that share a lambda form a group, and each group runs once at its
       lambda. The cost is one probe plus one forward pass per distinct lambda (at most
       ``len(lambdas)``, one with ``per="batch"``), never one per sample.

    In eval mode (BatchNorm with running statistics) every sample's logits are those the model
    gives it alone at its lambda, whatever else is in the batch. A module, so evaluators and
    attacks take it like any classifier; :attr:`last_lambdas` holds the lambdas of the last call.

    The line is fitted on condition-mean errors (:func:`fit_lambda_vs_error`); one image's error
    also depends on its content (textured images reconstruct worse), so ``per="sample"`` trades
    that spread for independence from how batches are composed, while ``per="batch"`` averages it
    out when a batch comes from one source.
    """

    def __init__(
        self,
        model: nn.Module,
        fit: LambdaFit,
        lambdas: Sequence[float],
        train_lam: float,
        *,
        per: str = "sample",
        layers: LayerChoice = None,
    ) -> None:
        super().__init__()
        if per not in ("sample", "batch"):
            raise ValueError(f"per must be 'sample' or 'batch', got {per!r}")
        if len(lambdas) == 0:
            raise ValueError("lambdas (the grid of allowed lambdas) is empty")
        selected = chosen_layers(model, layers)
        if not selected:
            raise ValueError("AdaptiveLambda needs a model with (chosen) CSC layers")
        self.model, self.fit, self.train_lam, self.per, self.layers = model, LambdaFit(*fit), float(train_lam), per, layers
        self.probe = selected[0][1]
        # The grid stays on the host in float64: N numbers to round, and the lambdas set on the
        # layers are then exactly the grid's values.
        self.grid = torch.tensor(sorted(set(map(float, lambdas))), dtype=torch.float64)
        self.last_lambdas: Tensor | None = None

    def extra_repr(self) -> str:
        return f"per={self.per!r}, train_lam={self.train_lam}, grid={self.grid.tolist()}, fit={tuple(self.fit)}"

    @torch.no_grad()
    def errors(self, x: Tensor) -> Tensor:
        """Per-sample :func:`reconstruction_mse` of the probed layer at the training lambda."""

        def stop(module, inputs, output):
            raise _ProbeDone

        hook = self.probe.register_forward_hook(stop)
        try:
            with at_lambda(self.model, self.train_lam, self.layers):
                self.model(x)
        except _ProbeDone:
            pass
        finally:
            hook.remove()
        return reconstruction_mse(self.probe)

    def choose(self, x: Tensor) -> Tensor:
        """Index into :attr:`grid` of every sample's lambda, shape [N], on the host."""
        error = self.errors(x).double().cpu()
        if self.per == "batch":
            error = error.mean().expand(len(x))
        wanted = self.fit.predict(error)
        return (wanted[:, None] - self.grid[None, :]).abs().argmin(1)

    def forward(self, x: Tensor) -> Tensor:
        if self.model.training:
            raise RuntimeError("AdaptiveLambda is an inference mode: put the model in eval mode first (model.eval())")
        index = self.choose(x)
        logits: Tensor | None = None
        for k in index.unique().tolist():
            members = (index == k).nonzero().squeeze(1).to(x.device)
            with at_lambda(self.model, self.grid[k].item(), self.layers):
                out = self.model(x[members])
            if logits is None:
                logits = out.new_empty(len(x), *out.shape[1:])
            logits[members] = out
        self.last_lambdas = self.grid[index]
        return logits


def adaptive_predict(
    model: nn.Module,
    x: Tensor,
    fit: LambdaFit,
    *,
    lambdas: Sequence[float],
    train_lam: float,
    per: str = "sample",
    layers: LayerChoice = None,
) -> tuple[Tensor, Tensor]:
    """Logits of ``x`` with lambda chosen per sample (or per batch) by :class:`AdaptiveLambda`,
    and the lambda each sample got. The model runs in eval mode; its previous mode is restored."""
    adaptive = AdaptiveLambda(model, fit, lambdas, train_lam, per=per, layers=layers)
    with evaluating(model), torch.no_grad():
        logits = adaptive(x.to(model_device(model)))
    return logits, adaptive.last_lambdas


@torch.no_grad()
def adaptive_accuracy(
    adaptive: AdaptiveLambda, batches: Batches, *, device: str | torch.device | None = None
) -> tuple[float, float]:
    """Top-1 accuracy (%) of adaptive inference over ``batches``, and the mean lambda it chose."""
    device = torch.device(device) if device is not None else model_device(adaptive.model)
    correct, n, lam_sum = 0, 0, 0.0
    with evaluating(adaptive.model):
        for x, y in batches:
            logits = adaptive(x.to(device))
            correct += (logits.argmax(1) == y.to(device)).sum().item()
            n += len(y)
            lam_sum += adaptive.last_lambdas.sum().item()
    if n == 0:
        raise ValueError("no batches to evaluate")
    return 100.0 * correct / n, lam_sum / n


def compare_adaptive(
    model: nn.Module,
    batches_by_condition: Mapping[tuple[str, int], Batches],
    fit: LambdaFit,
    lambdas: Sequence[float],
    train_lam: float,
    *,
    table: pd.DataFrame | None = None,
    device: str | torch.device | None = None,
    layers: LayerChoice = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Fixed training lambda vs adaptive lambda vs the oracle best lambda, per condition.

    ``batches_by_condition`` maps ``(noise, severity)`` to batches; ``lambdas`` is the grid both
    the adaptive mode and the oracle choose from. The fixed and oracle accuracies come from
    :func:`accuracy_vs_lambda` at ``lambdas`` and ``train_lam``, or, to reuse a sweep already
    done, from ``table`` (this model's rows of :func:`sweep`).

    Columns: ``noise, severity, fixed, adaptive_sample, adaptive_batch, oracle`` (accuracies in
    %), ``lam_sample, lam_batch`` (mean lambda the adaptive modes chose) and ``oracle_lam``.
    """
    if table is not None and "model" in table.columns and table["model"].nunique() > 1:
        raise ValueError("compare_adaptive: pass the rows of one model as `table` (table[table.model == name])")
    grid = sorted(set(map(float, lambdas)) | {float(train_lam)})
    adaptive = {per: AdaptiveLambda(model, fit, lambdas, train_lam, per=per, layers=layers) for per in ("sample", "batch")}
    items = list(batches_by_condition.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="adaptive lambda")
    rows = []
    for (noise, severity), batches in items:
        require_reiterable(batches)
        if table is None:
            swept = pd.DataFrame(accuracy_vs_lambda(model, batches, grid, device=device, layers=layers))
        else:
            swept = table[(table["noise"] == noise) & (table["severity"] == severity)]
            if not np.isclose(swept["lam"], train_lam).any():
                raise ValueError(f"`table` has no row for ({noise!r}, {severity}) at the training lambda {train_lam}")
        best = swept.sort_values(["accuracy", "lam"], ascending=[False, True], kind="stable").iloc[0]
        row = {
            "noise": noise,
            "severity": severity,
            "fixed": float(swept.loc[np.isclose(swept["lam"], train_lam), "accuracy"].iloc[0]),
        }
        for per, mode in adaptive.items():
            row[f"adaptive_{per}"], row[f"lam_{per}"] = adaptive_accuracy(mode, batches, device=device)
        row.update(oracle=float(best["accuracy"]), oracle_lam=float(best["lam"]))
        rows.append(row)
    columns = ["noise", "severity", "fixed", "adaptive_sample", "adaptive_batch", "oracle"]
    return pd.DataFrame(rows, columns=columns + ["lam_sample", "lam_batch", "oracle_lam"])
