"""Checkpoints: atomic writes, ``weights_only`` loads, the model rebuilt from what was saved.

A training run writes two kinds of file into its folder (``sdnet.train``):

- ``resume.pt`` while it trains: everything a resumed run needs to continue exactly where it
  stopped (weights, SGD momentum, epoch, history, fingerprints, the precision it ran in); removed
  when the run finishes. About twice the size of the weights.
- ``weights.pt`` when it has finished: what a forward needs (float32 weights, the CSC solver
  state, the architecture) and what identifies the run (its configuration and fingerprints), no
  optimizer state. This is the file a committed study ships (about 2.8 MB at width 16).

Both are plain dicts of tensors, numbers, strings, lists and dicts, so they load with
``torch.load(..., weights_only=True)`` (no pickled code runs). Besides the weights they carry the
CSC solver state (the step-size refresh's warm start, which is not in ``state_dict``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdnet.config import SdnetError
from sdnet.csc import csc_layers
from sdnet.models import build

FORMAT = 3  # 3: weights.pt apart from resume.pt (2: one checkpoint.pt of both; 1: solver state as a vector)
WEIGHTS, RESUME = "weights.pt", "resume.pt"  # the file names in a run's folder


class CheckpointError(SdnetError, RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model asked for."""


class StaleCheckpoint(CheckpointError):
    """A checkpoint was made by another run (other parameters, code or data): it cannot be resumed."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``.

    A run killed while saving leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_temporaries(path: str | Path) -> None:
    """Delete the temporary files :func:`save_atomic` leaves when killed mid-write (SIGKILL gives
    it no chance to clean up); the checkpoint itself is intact or absent."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def solver_state(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every CSC layer's step-size state (``CSCConv2d.solver_state``; not in ``state_dict``)."""
    return {name: layer.solver_state() for name, layer in csc_layers(unwrap(model))}


def load_solver_state(model: nn.Module, state: dict[str, dict[str, Any]]) -> None:
    layers = dict(csc_layers(unwrap(model)))
    for name, layer_state in state.items():
        layers[name].load_solver_state(layer_state)


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train a model first (python -m sdnet.train ...)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, not a checkpoint, or a pickled object we refuse to run
        raise CheckpointError(f"cannot read checkpoint {path}: {error}. Delete it and train again.") from error
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path} is not an sdnet checkpoint")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path} was written by another version of sdnet (format {ckpt['format']}, this one reads {FORMAT}): train it again")
    return ckpt


def architecture(model_name: str, num_classes: int, stem: str, *, lam: float, n_steps: int, shortcut: bool, width: int) -> dict[str, Any]:
    """What ``sdnet.models.build`` needs to rebuild the network, as saved in a checkpoint."""
    return dict(model=model_name, num_classes=num_classes, stem=stem, lam=lam, n_steps=n_steps, shortcut=shortcut, width=width)


def build_from(arch: dict[str, Any]) -> nn.Module:
    options = {k: v for k, v in arch.items() if k not in ("model", "num_classes", "stem")}
    return build(arch["model"], arch["num_classes"], arch["stem"], **options)


def load_weights(model: nn.Module, ckpt: dict[str, Any], expected_arch: dict[str, Any] | None = None) -> None:
    """Load a checkpoint's weights (and solver state) into ``model``, with a clear error on mismatch."""
    saved = ckpt["arch"]
    if expected_arch is not None:
        keys = ("model", "num_classes", "stem", "shortcut", "width")
        diff = {k: (saved.get(k), expected_arch.get(k)) for k in keys if saved.get(k) != expected_arch.get(k)}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"the checkpoint is of another architecture ({detail})")
    try:
        unwrap(model).load_state_dict(ckpt["model"])
    except RuntimeError as error:
        raise CheckpointError(f"the checkpoint ({saved.get('model')}) does not fit this model: {error}") from error
    load_solver_state(model, ckpt.get("solver", {}))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the saved network, load its weights, move it to ``device`` in eval mode."""
    ckpt = load(path)
    model = build_from(ckpt["arch"])
    load_weights(model, ckpt)
    return model.to(device).eval(), ckpt


def unfinished(ckpt: dict[str, Any], path: str | Path) -> str | None:
    """Why the checkpoint at ``path`` is not a finished network (it stopped before its last
    epoch), or None when it is one."""
    done, epochs = ckpt["epoch"], ckpt["config"]["epochs"]
    return None if done == epochs else f"{path} stopped at epoch {done} of {epochs}"


def require_finished(ckpt: dict[str, Any], path: str | Path, advice: str) -> None:
    """A :class:`CheckpointError` (its reason, then ``advice``) unless the checkpoint is finished."""
    if reason := unfinished(ckpt, path):
        raise CheckpointError(f"{reason}: {advice}")
