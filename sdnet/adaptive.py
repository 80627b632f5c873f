"""Adaptive lambda: choosing the test-time lambda from the input itself, noise unknown.

Beyond the paper, which tunes lambda per noise condition with the labels at hand: the best lambda
is roughly a line in the first CSC layer's reconstruction error at the training lambda
(:func:`sdnet.robustness.fit_lambda_vs_error`), and that error can be measured on any input.
:class:`AdaptiveLambda` turns a trained SDNet into a classifier that measures it and picks lambda
by itself; :func:`compare_adaptive` measures that against the fixed training lambda and the
oracle (the best lambda of each condition, chosen with the labels), and
:func:`leave_one_noise_out` fits the line without the noise it is then evaluated on, so the
comparison is not flattered by fitting and testing on the same conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from sdnet.csc import select_layers
from sdnet.evaluate import Batches, LayerChoice, Tally, at_lambda, evaluating, lambda_sweep, model_device
from sdnet.robustness import LambdaFit, fit_lambda_vs_error, run_until


class AdaptiveLambda(nn.Module):
    """Inference with lambda chosen per input from its reconstruction error.

    For a batch ``x``:

    1. *probe*: run the network at the training lambda up to the first chosen CSC layer only (the
       forward pass is cut there) and read each sample's ``reconstruction_mse``;
    2. *choose*: ``per="sample"``: every sample gets ``fit.predict(its error)``;
       ``per="batch"``: the whole batch gets ``fit.predict(mean error)``. The value is rounded to
       the nearest lambda of ``lambdas`` (so also clipped to the grid's range);
    3. *classify*: the samples that share a lambda form a group, and each group runs once at its
       lambda. The cost is one probe plus one forward pass per distinct lambda (at most
       ``len(lambdas)``, one with ``per="batch"``), never one per sample.

    In eval mode (BatchNorm with running statistics) every sample's logits are those the model
    gives it alone at its lambda, whatever else is in the batch. A module, so evaluators and
    attacks take it like any classifier; :attr:`last_lambdas` holds the lambdas of the last call.

    The line is fitted on condition-mean errors; one image's error also depends on its content
    (textured images reconstruct worse), so ``per="sample"`` trades that spread for independence
    from how batches are composed, while ``per="batch"`` averages it out when a batch comes from
    one source.
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
        selected = select_layers(model, layers)
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
        """Per-sample ``reconstruction_mse`` of the probed layer at the training lambda."""

        with at_lambda(self.model, self.train_lam, self.layers):
            run_until(self.model, self.probe, x)
        return self.probe.reconstruction_mse()

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


@torch.no_grad()
def adaptive_accuracy(
    adaptive: AdaptiveLambda, batches: Batches, *, device: str | torch.device | None = None, bf16: bool | str = "auto",
) -> tuple[float, float, np.ndarray]:
    """Top-1 accuracy (%) of adaptive inference over ``batches``, the mean lambda it chose, and
    which images it got right (bool, in the batches' order). ``bf16`` as in
    :func:`sdnet.evaluate.evaluate`, so that the adaptive rows and the sweep's fixed-lambda rows
    they are compared with run in one precision."""
    from sdnet.device import autocast_for
    from sdnet.robustness import hits_per_pass, recording_hits

    device = torch.device(device) if device is not None else model_device(adaptive.model)
    tally, lam_sum = Tally(device), 0.0
    with evaluating(adaptive.model), recording_hits(adaptive) as seen:
        for x, y in batches:
            with autocast_for(device, bf16):
                logits = adaptive(x.to(device))
            tally.add(logits, y.to(device))
            lam_sum += adaptive.last_lambdas.sum().item()  # on the host already (see `choose`)
    result = tally.result()
    return result["top1"], lam_sum / result["n"], hits_per_pass(seen, batches, 1)[0]


def leave_one_noise_out(best: pd.DataFrame) -> dict[str, LambdaFit]:
    """For each noise of a :func:`sdnet.robustness.best_lambda_table` table (one model, with the
    ``recon_error_train_lam`` column), the line fitted on the conditions of every *other* noise.

    The clean condition counts as a noise of its own: it is held out when ``"clean"`` is evaluated
    and a fitting point otherwise. Used as ``compare_adaptive(..., fit=leave_one_noise_out(best))``,
    every condition is evaluated with a line that never saw its noise.
    """
    fits = {}
    for noise in best["noise"].unique():
        rest = best[best["noise"] != noise]
        fits[noise] = fit_lambda_vs_error(rest["recon_error_train_lam"], rest["best_lam"])
    return fits


def compare_adaptive(
    model: nn.Module,
    batches_by_condition: Mapping[tuple[str, int], Batches],
    fit: LambdaFit | Mapping[str, LambdaFit],
    lambdas: Sequence[float],
    train_lam: float,
    *,
    table: pd.DataFrame | None = None,
    device: str | torch.device | None = None,
    layers: LayerChoice = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Fixed training lambda vs adaptive lambda vs the oracle best lambda, per condition.

    ``batches_by_condition`` maps ``(noise, severity)`` to batches; ``fit`` is one line for every
    condition, or one per noise (e.g. :func:`leave_one_noise_out`); ``lambdas`` is the grid both
    the adaptive mode and the oracle choose from. The fixed and oracle accuracies come from
    :func:`sdnet.evaluate.lambda_sweep` at ``lambdas`` and ``train_lam``, or, to reuse a sweep
    already done, from ``table`` (this model's rows of :func:`sdnet.robustness.sweep`).

    Columns: ``noise, severity, fixed, adaptive_sample, adaptive_batch, oracle`` (accuracies in
    %), ``lam_sample, lam_batch`` (mean lambda the adaptive modes chose), ``oracle_lam``, and
    ``correct_sample, correct_batch``: which images each adaptive mode got right (bool arrays).
    The adaptive modes run in the precision :func:`sdnet.evaluate.evaluate` uses by default (bf16
    where the hardware has it), as the sweep whose rows ``table`` holds.
    """
    if table is not None and "model" in table.columns and table["model"].nunique() > 1:
        raise ValueError("compare_adaptive: pass the rows of one model as `table` (table[table.model == name])")
    grid = sorted(set(map(float, lambdas)) | {float(train_lam)})
    items = list(batches_by_condition.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="adaptive lambda")
    rows = []
    for (noise, severity), batches in items:
        line = fit if isinstance(fit, LambdaFit) else fit[noise]
        if table is None:
            swept = pd.DataFrame(lambda_sweep(model, batches, grid, device=device, layers=layers))
        else:
            swept = table[(table["noise"] == noise) & (table["severity"] == severity)]
            if not np.isclose(swept["lam"], train_lam).any():
                raise ValueError(f"`table` has no row for ({noise!r}, {severity}) at the training lambda {train_lam}")
        best = swept.sort_values(["top1", "lam"], ascending=[False, True], kind="stable").iloc[0]
        row = {"noise": noise, "severity": severity, "fixed": float(swept.loc[np.isclose(swept["lam"], train_lam), "top1"].iloc[0])}
        for per in ("sample", "batch"):
            mode = AdaptiveLambda(model, line, lambdas, train_lam, per=per, layers=layers)
            row[f"adaptive_{per}"], row[f"lam_{per}"], row[f"correct_{per}"] = adaptive_accuracy(mode, batches, device=device)
        row.update(oracle=float(best["top1"]), oracle_lam=float(best["lam"]))
        rows.append(row)
    columns = ["noise", "severity", "fixed", "adaptive_sample", "adaptive_batch", "oracle"]
    return pd.DataFrame(rows, columns=columns + ["lam_sample", "lam_batch", "oracle_lam", "correct_sample", "correct_batch"])
