"""The convolutional sparse coding (CSC) layer: a drop-in replacement for ``nn.Conv2d``.

The output of a CSC layer is not ``conv(x)`` but the sparse code ``z`` that best explains its input
``x`` with a learned convolutional dictionary ``A``:

    z* = argmin_z  lam * ||z||_1  +  mu/2 * ||z||_2^2  +  1/2 * ||x - A(z)||_2^2     (and z >= 0)

``A(z)`` is the transposed convolution of the code with the dictionary, ``A^T(r)`` the ordinary
convolution, so the dictionary has exactly the shape of a conv weight ``[C_out, C_in, k, k]``.
The problem is solved by ``n_steps`` unrolled (F)ISTA steps and gradients flow through them.

Reading order: :func:`shrink` (the proximal step), :func:`fista` (the unrolled solver, a pure
function), :func:`power_iteration` (the step size), then :class:`CSCConv2d`, which ties them
together and keeps the state between calls, and :func:`csc_lambda` (test-time lambda).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Step size t = STEP_SCALE / L: a margin below the 1/L that guarantees ISTA descends, as the
# authors use (L itself is an iterative estimate from below).
STEP_SCALE = 0.9


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


# ---------------------------------------------------------------------------------------------
# The dictionary as a linear operator
# ---------------------------------------------------------------------------------------------


def synthesis_output_padding(
    input_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int]:
    """Output padding that makes ``A(z)`` (a transposed conv) exactly the size of the input ``x``.

    ``conv2d`` rounds the output size down, so for stride > 1 several input sizes give the same
    code size; the transposed conv needs to be told which one (1 for the usual stride-2 layers on
    even sizes). With it, ``conv_transpose2d`` is the exact adjoint of ``conv2d``.
    """
    out = []
    for n, k, s, p in zip(input_size, kernel_size, stride, padding):
        code = (n + 2 * p - k) // s + 1
        out.append(n - ((code - 1) * s - 2 * p + k))
    return out[0], out[1]


def synthesize(z: Tensor, weight: Tensor, stride, padding, output_padding) -> Tensor:
    """``A(z)``: the signal the code ``z`` describes (transposed convolution)."""
    return F.conv_transpose2d(z, weight, stride=stride, padding=padding, output_padding=output_padding)


def analyze(x: Tensor, weight: Tensor, stride, padding, bias: Tensor | None = None) -> Tensor:
    """``A^T(x)``: correlation of the signal with every atom (ordinary convolution), plus ``bias``
    per atom if given."""
    return F.conv2d(x, weight, bias, stride=stride, padding=padding)


# ---------------------------------------------------------------------------------------------
# The unrolled solver (pure functions)
# ---------------------------------------------------------------------------------------------


def shrink(
    v: Tensor, threshold: Tensor | float, mu_t: Tensor | float, non_negative: bool, *, inplace: bool = False
) -> Tensor:
    """Proximal operator of ``t * (lam*|z| + mu/2*z^2 [+ indicator z >= 0])`` at ``v``.

    ``threshold`` is ``lam * t`` and ``mu_t`` is ``mu * t``; both may be tensors so the step size
    never has to be read back to the host. ``softshrink(v, th) / (1 + mu t)`` equals the paper's
    ``softshrink(v / (1 + mu t), th / (1 + mu t))``; pass ``mu_t = 0`` (a number) to skip that
    division, which is then the identity.

    ``inplace=True`` lets the non-negative shrinkage overwrite ``v`` instead of allocating two
    full-size temporaries; only for a ``v`` that nothing else uses and autograd has not saved.
    """
    if non_negative:
        out = v.sub_(threshold).relu_() if inplace else torch.relu(v - threshold)
    else:
        # softshrink with a tensor threshold: v - clamp(v, -th, th)
        out = v - torch.clamp(v, -threshold, threshold)
    if isinstance(mu_t, Tensor) or mu_t != 0:
        out = out / (1 + mu_t)
    return out


def fista(
    x: Tensor,
    weight: Tensor,
    step_size: Tensor | float,
    *,
    lam: float,
    mu: float = 0.0,
    n_steps: int = 2,
    non_negative: bool = True,
    stride=1,
    padding=0,
    output_padding=0,
) -> Tensor:
    """Solve the CSC problem for ``x`` with ``n_steps`` FISTA steps started at ``z = 0``.

    Step 0 and step 1 are plain ISTA steps (at ``z = 0`` the gradient step is just ``t * A^T x``),
    momentum starts at step 2 with the usual sequence ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``
    (Beck & Teboulle; ``t_k`` is (1+sqrt 5)/2 at step 2). With ``n_steps = 2``, as in every
    experiment of the paper, this is two ISTA steps.

    The paper's layer (``non_negative``, ``mu = 0``) shrinks with ``relu(v - lam*t)``; the
    ``- lam*t`` is then the bias of the convolution ``t*A^T(r)``, added in its accumulator, so a
    step is a convolution, one addition and a ReLU, with no pass of its own for the threshold.

    Precision under bf16 autocast. The dictionary convolutions run in bf16; what they return is
    rounded to bf16 as any convolution's output is. Everything else is computed in float32: the
    residual ``x - A y`` (a difference of nearly equal numbers, which bf16 arithmetic would leave
    mostly rounding error) and each update ``y + t*A^T(r)`` are float32 differences and sums of
    their operands, and the momentum combination and the iterates it combines are kept in float32.
    Only values bf16 holds exactly or that go straight into a bf16 convolution are stored in bf16:
    the first iterate (the ReLU of a bf16 convolution output), a residual in bf16 when ``x`` is
    (rounded once from its float32 value, as autocast would round it for the convolution), and the
    last iterate, the layer's output, rounded once like a convolution's. This halves the memory
    traffic of the code-sized tensors without rounding anything the float32 solver would not round.
    Outside autocast everything runs in the input's precision (at least float32).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    state = torch.promote_types(x.dtype, torch.float32)  # iterates kept across a momentum step
    threshold = lam * step_size
    # With mu = 0 (every experiment of the paper) the prox has no rescaling; a plain 0 tells
    # `shrink` so, where a 0-valued tensor would cost a full-size division (and its backward).
    mu_t = mu * step_size if mu != 0 else 0.0
    # Folding t into the (small) weight saves a full-size multiply per step: t*A^T(r) = A_t^T(r).
    weight_t = weight * step_size
    folded = non_negative and mu == 0  # the shrinkage is relu(v - lam*t): the threshold is a bias
    bias = torch.as_tensor(-threshold, dtype=weight_t.dtype, device=weight_t.device).expand(weight.shape[0]).contiguous() if folded else None

    def update(r: Tensor, y: Tensor | None, out_dtype: torch.dtype | None) -> Tensor:
        """The next iterate ``prox(y + t*A^T(r))``; ``out_dtype``: float32 (the state) for an
        iterate a later momentum step reuses, None for the sum's own promoted precision."""
        v = analyze(r, weight_t, stride, padding, bias)  # t*A^T(r) [- lam*t]
        if y is not None:
            # One float32 pass: bf16 operands are widened inside the kernel, the sum rounded once.
            v = torch.add(y if out_dtype is None or y.dtype == out_dtype else y.to(out_dtype), v)
        elif out_dtype is not None:
            v = v.to(out_dtype)
        # `v` is a fresh tensor that autograd has not saved (a convolution keeps its inputs, an
        # addition nothing), so the shrinkage may overwrite it.
        return v.relu_() if folded else shrink(v, threshold, mu_t, non_negative, inplace=True)

    def state_dtype(step: int) -> torch.dtype | None:
        # Iterates that a momentum step combines (from step 2 on, i.e. z_1, z_2, ... when
        # n_steps > 2) are kept in float32; the others in the precision they come in.
        return state if 1 <= step < n_steps - 1 else None

    z = update(x, None, state_dtype(0))
    z_prev, momentum_t = z, 1.0
    for k in range(1, n_steps):
        next_t = (1 + math.sqrt(1 + 4 * momentum_t**2)) / 2
        beta = (momentum_t - 1) / next_t  # 0 at step 1, so step 1 is a plain ISTA step
        y = z if beta == 0 else z + beta * (z - z_prev.to(z.dtype))
        momentum_t = next_t
        residual = x - synthesize(y, weight, stride, padding, output_padding)
        z_prev, z = z, update(residual, y, state_dtype(k))
    return z


class PowerIteration(NamedTuple):
    """The result of :func:`power_iteration`: the estimate ``L`` (a 0-d tensor on the vector's
    device), the vector ``v``, the number of ``iterations`` run, ``L`` as a host number, and
    whether the stopping rule was met (False: it stopped at ``max_iter``)."""

    L: Tensor
    v: Tensor
    iterations: int
    value: float
    converged: bool


@torch.no_grad()
def power_iteration(
    operator: Callable[[Tensor], Tensor],
    v: Tensor,
    *,
    max_iter: int = 50,
    tol: float = 1e-5,
    previous: float | None = None,
    batched_reads: bool | None = None,
) -> PowerIteration:
    """Largest eigenvalue of the symmetric PSD ``operator``, warm-started at ``v``.

    Returns ``(L, v, iterations, value)`` (:class:`PowerIteration`). Iteration ``i``
    computes ``u = operator(v)``, the estimate ``L_i = ||u||`` and the next vector ``v = u / L_i``;
    the loop stops after the first ``i`` with ``|L_i - L_{i-1}| <= tol * L_i``, or after
    ``max_iter`` iterations. ``L_0`` is ``previous``, the estimate that ended the call ``v`` comes
    from (a warm start): when the operator has barely changed since, one iteration confirms it.
    Without ``previous`` (a cold start) at least two iterations are run.

    Testing that rule needs the estimates on the host. On a CPU reading a number is free and the
    rule is tested after every iteration. On a GPU a read waits for all queued work, so the
    estimates are read in batches, after iterations 2, 4, 8, 16, ...; iterations run past the
    stopping point within a batch are discarded, so the result is exactly that of testing after
    every iteration, with at most ``log2(max_iter) + 1`` synchronisations instead of up to
    ``max_iter`` (one for a warm start that is already converged, two when it needs 3 or 4
    iterations), at the price of fewer than twice the iterations. ``batched_reads`` forces one
    way or the other (None: by device; the tests check on a CPU that both agree).
    """
    v = v / v.norm()
    every_iteration = v.device.type == "cpu" if batched_reads is None else not batched_reads
    pending: list[tuple[Tensor, Tensor]] = []  # (estimate, vector) of iterations not tested yet
    # From here on `previous` is the last estimate tested.
    next_test = 1 if every_iteration or previous is not None else 2
    for it in range(1, max_iter + 1):
        u = operator(v)
        estimate = u.norm()
        v = u / estimate
        pending.append((estimate, v))
        if it < next_test and it < max_iter:
            continue
        values = torch.stack([e for e, _ in pending]).tolist()  # the one host read of this batch
        for i, value, (estimate_i, v_i) in zip(range(it - len(pending) + 1, it + 1), values, pending):
            if previous is not None and abs(value - previous) <= tol * value:
                return PowerIteration(estimate_i, v_i, i, value, True)
            previous = value
        pending.clear()
        next_test = it + 1 if every_iteration else 2 * it
    return PowerIteration(estimate, v, max_iter, previous, False)


# ---------------------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------------------


class CSCConv2d(nn.Module):
    """Convolutional sparse coding layer, a drop-in for ``nn.Conv2d(in, out, k, stride, padding)``.

    Same output shape as the conv it replaces and the same parameter (``weight``, shape
    ``[out_channels, in_channels, k, k]``: the dictionary, one atom per output channel). No bias.

    Every forward call (so before every training step and every evaluation batch) first
    (1) rescales each atom to unit l2 norm, in place and outside autograd, and
    (2) refreshes the step size ``t = 0.9 / L``, ``L`` the largest eigenvalue of ``A^T A`` at this
    input's spatial size, by a power iteration warm-started from the previous call's vector;
    then it returns the code of :func:`fista`. Both steps run in float32 without autograd.

    ``lam`` may be changed at any time (see :func:`csc_lambda`). After a forward pass,
    :meth:`reconstruction_error` and :meth:`sparsity` describe the last batch, per sample, and
    :attr:`power_iterations` says how many iterations the step-size refresh took.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        lam: float = 0.1,
        mu: float = 0.0,
        n_steps: int = 2,
        non_negative: bool = True,
        bias: bool = False,
        power_max_iter: int = 50,
        power_tol: float = 1e-5,
    ) -> None:
        super().__init__()
        if bias:
            raise ValueError("CSCConv2d has no bias: its output is a sparse code (pass bias=False)")
        if isinstance(padding, str):
            raise ValueError("CSCConv2d takes numeric padding, not 'same'/'valid'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.lam, self.mu, self.n_steps, self.non_negative = lam, mu, n_steps, non_negative
        self.power_max_iter, self.power_tol = power_max_iter, power_tol
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        # Same initialisation as nn.Conv2d; atoms are normalised at the first forward anyway.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        # Solver state, not part of the state_dict (so a CSCConv2d loads an nn.Conv2d state_dict):
        # the warm-start vector of the power iteration and the current step size.
        self.register_buffer("power_vector", None, persistent=False)
        self.register_buffer("step_size", None, persistent=False)
        self.power_iterations: int | None = None  # taken by the last refresh (a diagnostic)
        self._last_estimate: float | None = None  # the last L, the next warm start's L_0
        self._refreshed_for: tuple | None = None  # (weight version, storage, input size) of the last refresh
        self._last: tuple[Tensor, Tensor, Tensor, int] | None = None

    # -- hyper-parameters, validated so a bad value fails where it is set ----------------------
    def __setattr__(self, name, value):
        if name == "lam" and not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"lam must be a number >= 0, got {value!r}")
        if name == "mu" and not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"mu must be a number >= 0, got {value!r}")
        if name == "n_steps" and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"n_steps must be an integer >= 1, got {value!r}")
        super().__setattr__(name, value)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, lam={self.lam}, mu={self.mu}, "
            f"n_steps={self.n_steps}, non_negative={self.non_negative}"
        )

    # -- the dictionary ------------------------------------------------------------------------
    def output_padding(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return synthesis_output_padding(input_size, self.kernel_size, self.stride, self.padding)

    @torch.no_grad()
    def normalize_atoms(self) -> None:
        """Rescale every atom to unit l2 norm (a projection, no gradient through it).

        Done on ``.data`` so that autograd's version counter is not bumped: a second forward before
        a backward (e.g. clean + noisy loss) must not invalidate tensors saved by the first one.
        """
        w = self.weight.data
        # Reduced over the atom's axes directly: flattening would copy a channels_last weight.
        w.div_(torch.linalg.vector_norm(w, dim=(1, 2, 3), keepdim=True).clamp_min(1e-12))

    @torch.compiler.disable
    @torch.no_grad()
    def refresh_step_size(self, input_size: tuple[int, int]) -> Tensor:
        """Normalise the atoms and re-estimate ``L = ||A||^2`` at ``input_size``; returns ``t``.

        ``t`` is a function of the dictionary and the input size only, so a call that finds both
        unchanged since the last refresh (every evaluation batch after the first, a second forward
        before an optimiser step) returns the same ``t`` without iterating. "Unchanged" is what
        autograd's version counter says: optimiser steps, ``load_state_dict`` and in-place edits
        under ``torch.no_grad()`` all count; an edit through ``weight.data`` does not (call
        :meth:`forget_step_size` after one).
        """
        key = (self.weight._version, self.weight.data_ptr(), tuple(input_size))
        if self.step_size is not None and key == self._refreshed_for:
            self.power_iterations = 0
            return self.step_size
        self.normalize_atoms()
        with torch.autocast(self.weight.device.type, enabled=False):
            # float32 at least (also under autocast and for half-precision weights), float64 kept.
            weight = self.weight.to(torch.promote_types(self.weight.dtype, torch.float32))
            op = self.output_padding(input_size)
            shape = (1, self.in_channels, *input_size)
            v, previous = self.power_vector, self._last_estimate
            if v is None or v.shape != shape or v.device != weight.device or v.dtype != weight.dtype:
                # Cold start from a fixed seed: deterministic, and it leaves the global RNG alone.
                g = torch.Generator().manual_seed(0)
                v, previous = torch.randn(shape, generator=g, dtype=weight.dtype).to(weight.device), None

            # L is the top eigenvalue of A A^T (same non-zero spectrum as A^T A), iterated in the
            # input space of the layer.
            def gram(u: Tensor) -> Tensor:
                return synthesize(analyze(u, weight, self.stride, self.padding), weight, self.stride, self.padding, op)

            result = power_iteration(gram, v, max_iter=self.power_max_iter, tol=self.power_tol, previous=previous)
            self.power_vector, self.power_iterations, self._last_estimate = result.v, result.iterations, result.value
            self.step_size = STEP_SCALE / result.L
        # Only a converged estimate is kept for an unchanged dictionary; one cut off at
        # `power_max_iter` is used for this call and continued (warm) by the next.
        self._refreshed_for = key if result.converged else None
        return self.step_size

    def forget_step_size(self) -> None:
        """Make the next forward re-estimate ``t`` (after editing the dictionary through ``.data``)."""
        self._refreshed_for = None

    def solver_state(self) -> dict[str, Any]:
        """What the step-size refresh carries from one call to the next (not in ``state_dict``):
        the warm-start vector, the last estimate of ``L``, the step size and the input size it is
        valid for. Saved with a checkpoint, it makes a resumed run continue exactly.

        The input size is kept only while the step size is valid for the dictionary as it is now:
        after an optimiser step (a training run saved between epochs) the next forward must
        re-estimate, in the resumed run as in the uninterrupted one."""
        current = self._refreshed_for is not None and self._refreshed_for[:2] == (self.weight._version, self.weight.data_ptr())
        return {
            "vector": None if self.power_vector is None else self.power_vector.detach().cpu(),
            "estimate": self._last_estimate,
            "step_size": None if self.step_size is None else self.step_size.detach().cpu(),
            "input_size": list(self._refreshed_for[2]) if current else None,
        }

    def load_solver_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`solver_state` (after the dictionary itself has been loaded)."""
        dtype = torch.promote_types(self.weight.dtype, torch.float32)
        self.power_vector = None if state["vector"] is None else state["vector"].to(self.weight.device, dtype)
        self._last_estimate = state["estimate"]
        self.step_size = None if state["step_size"] is None else state["step_size"].to(self.weight.device, dtype)
        size = state["input_size"]
        self._refreshed_for = None if size is None or self.step_size is None else (self.weight._version, self.weight.data_ptr(), tuple(size))

    @property
    def lipschitz(self) -> Tensor | None:
        """The last estimate of ``L``, the largest eigenvalue of ``A^T A``."""
        return None if self.step_size is None else STEP_SCALE / self.step_size

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input [N, {self.in_channels}, H, W], got {list(x.shape)}")
        input_size = (x.shape[-2], x.shape[-1])
        step_size = self.refresh_step_size(input_size)
        op = self.output_padding(input_size)
        z = fista(
            x, self.weight, step_size, lam=self.lam, mu=self.mu, n_steps=self.n_steps,
            non_negative=self.non_negative, stride=self.stride, padding=self.padding, output_padding=op,
        )
        # Kept for the diagnostics below (references only, nothing is computed or copied here).
        self._last = (x.detach(), z.detach(), self.weight.detach(), self.weight._version)
        # Under autocast the code leaves the layer in autocast's precision, as a convolution's
        # output does (with n_steps = 2 it already is; see `fista`), so the BatchNorm and the
        # blocks after it run as they would after the conv this layer replaces.
        if torch.is_autocast_enabled(x.device.type):
            z = z.to(torch.get_autocast_dtype(x.device.type))
        return z

    # -- diagnostics of the last forward ---------------------------------------------------------
    def _last_batch(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._last is None:
            raise RuntimeError("no forward pass yet: run the layer on a batch first")
        x, z, weight, version = self._last
        if self.weight._version != version:
            raise RuntimeError("the dictionary changed since the last forward pass: run a forward again")
        return x, z, weight

    @torch.no_grad()
    def reconstruction(self) -> Tensor:
        """``A z`` for the last batch: the layer's reconstruction of its input."""
        x, z, weight = self._last_batch()
        op = self.output_padding((x.shape[-2], x.shape[-1]))
        return synthesize(z.to(weight.dtype), weight, self.stride, self.padding, op)

    @torch.no_grad()
    def reconstruction_error(self) -> Tensor:
        """Per-sample squared reconstruction error ``||x - A z||^2`` of the last batch, shape [N]."""
        return reconstruction_error(self._last_batch()[0], self.reconstruction())

    @torch.no_grad()
    def reconstruction_mse(self) -> Tensor:
        """Per-sample ``||x - A z||^2 / numel(x)`` of the last batch, shape [N]: the error per input
        value, comparable across input sizes (what the robustness chapter fits lambda against)."""
        return reconstruction_error(self._last_batch()[0], self.reconstruction(), "mean")

    @torch.no_grad()
    def sparsity(self) -> Tensor:
        """Per-sample fraction of exactly-zero code entries of the last batch, shape [N]."""
        _, z, _ = self._last_batch()
        return (z == 0).flatten(1).float().mean(1)

    @torch.no_grad()
    def objective(self) -> Tensor:
        """Per-sample CSC objective (:func:`objective`) of the last batch's code, shape [N]."""
        x, z, weight = self._last_batch()
        return objective(x, z, weight, lam=self.lam, mu=self.mu, stride=self.stride, padding=self.padding)


# ---------------------------------------------------------------------------------------------
# The quantities the layer trades off (one definition each)
# ---------------------------------------------------------------------------------------------

REDUCTIONS = ("sum", "mean", "relative")


def reconstruction_error(x: Tensor, x_hat: Tensor, reduction: str = "sum") -> Tensor:
    """Per-sample reconstruction error of ``x_hat`` against ``x`` (both ``[N, ...]``), shape [N].

    ``"sum"``: ``||x - x_hat||^2`` (the data term of the CSC objective, times 2); ``"mean"``: the
    same divided by the number of values of one sample; ``"relative"``: divided by ``||x||^2``.
    Computed in float32 at least, whatever the inputs' precision.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, x_hat.dtype), torch.float32)
    x = x.to(dtype)
    error = (x - x_hat.to(dtype)).pow(2).flatten(1).sum(1)
    if reduction == "mean":
        return error / x[0].numel()
    if reduction == "relative":
        return error / x.pow(2).flatten(1).sum(1).clamp_min(torch.finfo(dtype).tiny)
    return error


def objective(x: Tensor, z: Tensor, weight: Tensor, *, lam: float, mu: float = 0.0, stride=1, padding=0) -> Tensor:
    """Per-sample CSC objective ``lam*||z||_1 + mu/2*||z||^2 + 1/2*||x - A(z)||^2``, shape [N].

    The function :func:`fista` decreases; ``A`` is the dictionary ``weight`` (atoms as they are:
    the layer normalises them before each forward pass). Differentiable, so it can also serve as
    an unsupervised loss for learning a dictionary.
    """
    op = synthesis_output_padding((x.shape[-2], x.shape[-1]), _pair(weight.shape[-2:]), _pair(stride), _pair(padding))
    x_hat = synthesize(z.to(weight.dtype), weight, stride, padding, op)
    sparsity_term = lam * z.abs().flatten(1).sum(1)
    if mu:
        sparsity_term = sparsity_term + mu / 2 * z.pow(2).flatten(1).sum(1)
    return sparsity_term + 0.5 * reconstruction_error(x, x_hat)


# ---------------------------------------------------------------------------------------------
# Test-time lambda
# ---------------------------------------------------------------------------------------------


def csc_layers(model: nn.Module) -> list[tuple[str, CSCConv2d]]:
    """All CSC layers of ``model`` with their qualified names, in forward order of definition."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, CSCConv2d)]


LayerChoice = Callable[[str, CSCConv2d], bool] | list[str] | tuple[str, ...] | set[str] | None


def select_layers(model: nn.Module, layers: LayerChoice = None) -> list[tuple[str, CSCConv2d]]:
    """The CSC layers of ``model`` that ``layers`` chooses, in order of definition.

    ``layers`` is ``None`` (every CSC layer), a collection of qualified module names (each must
    be a CSC layer of the model), or a predicate ``(name, layer) -> bool``.
    """
    found = csc_layers(model)
    if layers is None:
        return found
    if callable(layers):
        return [(n, m) for n, m in found if layers(n, m)]
    unknown = set(layers) - {n for n, _ in found}
    if unknown:
        raise ValueError(f"not CSC layers of this model: {sorted(unknown)}")
    return [(n, m) for n, m in found if n in layers]


@contextlib.contextmanager
def csc_lambda(model: nn.Module, lam: float, layers: LayerChoice = None) -> Iterator[nn.Module]:
    """Temporarily set ``lam`` of the CSC layers of ``model`` (all, or those :func:`select_layers`
    chooses). The previous values are restored on exit, also on exceptions::

        with sdnet.csc_lambda(model, 0.5):
            accuracy = evaluate(model, noisy_loader)
    """
    chosen = select_layers(model, layers)
    if not chosen:
        raise ValueError("csc_lambda: the model has no (chosen) CSC layer")
    saved = [(m, m.lam) for _, m in chosen]
    try:
        for _, m in chosen:
            m.lam = lam
        yield model
    finally:
        for m, value in saved:
            m.lam = value
