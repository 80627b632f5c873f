"""Evaluation: the one loop that turns a model and batches into numbers.

    python -m sdnet.evaluate --checkpoint reports/quick/models/sdnet18/synthetic/seed0/weights.pt --lambdas 0.1 0.5 1.0

(in float32 unless ``--precision`` says otherwise: the number the pipeline records for the same weights)

Everything that measures accuracy in this package goes through :class:`Tally` (sums kept on the
device, read back once) and :func:`evaluate` (one pass over the batches in eval mode, on the
device's fast path: bf16 autocast where the hardware multiplies bf16 natively (:func:`use_bf16`),
channels_last tensors, as in training).
:func:`lambda_sweep` repeats it at several test-time lambdas, and :func:`at_lambda` is the one
place that knows a model without CSC layers (a ResNet baseline) has no lambda to set.

A *probe* names one CSC layer whose per-sample reconstruction error (per input value,
``CSCConv2d.reconstruction_mse()``) and code sparsity are averaged alongside the accuracy: the
quantities the robustness chapter relates to the best lambda.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdnet.config import ConfigError, command_line
from sdnet.device import autocast_for, resolve_device, use_bf16
from sdnet.csc import CSCConv2d, LayerChoice, csc_lambda, csc_layers, select_layers

Batches = Iterable[tuple[Tensor, Tensor]]


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


# ---------------------------------------------------------------------------------------------
# Test-time lambda, for models with and without CSC layers
# ---------------------------------------------------------------------------------------------


def has_lambda(model: nn.Module) -> bool:
    """Whether the model has CSC layers, i.e. a lambda to change at test time."""
    return bool(csc_layers(model))


def at_lambda(model: nn.Module, lam: float | None, layers: LayerChoice = None) -> contextlib.AbstractContextManager:
    """``csc_lambda(model, lam, layers)``, or nothing for ``lam=None`` or a model without CSC
    layers: a ResNet has no lambda, so one table can hold both kinds of model."""
    if lam is None or not has_lambda(model):
        return contextlib.nullcontext(model)
    return csc_lambda(model, float(lam), layers)


def probe_layer(model: nn.Module, probe: str | bool | None, layers: LayerChoice = None) -> CSCConv2d | None:
    """The CSC layer a probe names: ``True`` the first of the layers ``layers`` chooses (the
    layers a test-time lambda goes to; all by default), a string a qualified module name,
    ``None``/``False`` none. A model without CSC layers has nothing to probe: None."""
    if not probe or not has_lambda(model):
        return None
    if probe is True:
        chosen = select_layers(model, layers)
        if not chosen:
            raise ValueError("`layers` chooses no CSC layer of this model")
        return chosen[0][1]
    named = dict(csc_layers(model))
    if probe not in named:
        raise ValueError(f"probe {probe!r} is not a CSC layer of this model; its CSC layers: {sorted(named)}")
    return named[probe]


# ---------------------------------------------------------------------------------------------
# The tally and the loop
# ---------------------------------------------------------------------------------------------


class Tally:
    """Running sums of an evaluation, kept on the device and read back once.

    ``add(logits, labels)`` after each batch; :meth:`result` returns ``top1``, ``top5`` (in %),
    ``loss`` (mean cross-entropy), ``n`` and, with a ``probe`` layer, ``recon_error`` (mean of its
    per-sample ``reconstruction_mse``) and ``sparsity`` (mean fraction of zero code entries) of
    the batches it saw (call ``add`` right after the forward pass whose statistics count).
    """

    FIELDS = ("top1", "top5", "loss", "n", "recon_error", "sparsity")

    def __init__(self, device: torch.device | str, probe: CSCConv2d | None = None) -> None:
        self.probe = probe
        self.sums = torch.zeros(len(self.FIELDS), dtype=torch.float64, device=device)

    @torch.no_grad()
    def add(self, logits: Tensor, labels: Tensor) -> None:
        logits = logits.float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top5 == labels[:, None]
        n = torch.tensor(len(labels), device=logits.device)
        if self.probe is not None:
            error, zeros = self.probe.reconstruction_mse().sum(), self.probe.sparsity().sum()
        else:
            error = zeros = torch.zeros((), device=logits.device)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        self.sums += torch.stack([hits[:, 0].sum(), hits.any(1).sum(), loss, n, error, zeros]).double()

    def result(self) -> dict[str, float]:
        values = dict(zip(self.FIELDS, self.sums.tolist()))  # the one host read
        n = values["n"]
        if n == 0:
            raise ValueError("evaluate: no batches")
        out = {"top1": 100 * values["top1"] / n, "top5": 100 * values["top5"] / n, "loss": values["loss"] / n, "n": int(n)}
        if self.probe is not None:
            out.update(recon_error=values["recon_error"] / n, sparsity=values["sparsity"] / n)
        return out


def _require_reiterable(batches: Batches) -> None:
    """A sweep reads the batches once per point: a generator would be empty after the first."""
    if iter(batches) is batches:
        raise TypeError("batches must be re-iterable (a list of (images, labels) or a loader), not a one-shot iterator")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    *,
    lam: float | None = None,
    layers: LayerChoice = None,
    probe: str | bool | None = None,
    device: str | torch.device | None = None,
    bf16: bool | str = "auto",
    channels_last: bool = True,
    distributed: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy (%), mean cross-entropy and ``n`` of ``model`` over ``batches``.

    ``lam`` sets the test-time lambda of the CSC layers ``layers`` chooses (``lam=None``: leave
    them as they are); ``probe`` adds the mean reconstruction error and sparsity of one CSC layer
    (see :func:`probe_layer`). Runs in eval mode and restores the previous mode. ``bf16`` follows
    :func:`use_bf16`; ``channels_last`` tensors are the fast layout on every device.
    ``distributed``: each process evaluated its own shard; the sums are added across processes
    before the read (every process gets the result over all shards).
    """
    device = torch.device(device) if device is not None else model_device(model)
    tally = Tally(device, probe_layer(model, probe, layers))
    with evaluating(model), at_lambda(model, lam, layers):
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, bf16):
                logits = model(x)
            tally.add(logits, y)
    if distributed:
        torch.distributed.all_reduce(tally.sums)
    return tally.result()


def lambda_sweep(model: nn.Module, batches: Batches, lambdas: Sequence[float], **options) -> list[dict[str, float]]:
    """:func:`evaluate` at each test-time lambda: one row per lambda, with its ``lam``.

    ``options`` go to :func:`evaluate` (``layers``, ``probe``, ``device``, ...). A model without
    CSC layers has no lambda: it is evaluated once and the row repeated for every lambda, so that
    its table lines up with an SDNet's.
    """
    _require_reiterable(batches)
    if not has_lambda(model):
        row = evaluate(model, batches, **options)
        return [{"lam": float(lam), **row} for lam in lambdas]
    return [{"lam": float(lam), **evaluate(model, batches, lam=lam, **options)} for lam in lambdas]


# ---------------------------------------------------------------------------------------------
# A trained network on its test split
# ---------------------------------------------------------------------------------------------


def test_metrics(cfg, out: str | Path) -> dict[str, float]:
    """Top-1, top-5 and loss of the network ``sdnet.train.train(cfg, out)`` trained
    (``out/weights.pt``) on the test split of ``cfg.dataset``, in float32 (the same numbers on
    every machine, whatever precision it was trained in). Under ``torchrun`` every rank scores
    its share and the sums are combined. The one place the pipeline (``evaluate@<run>``) and the
    training command line measure a trained network."""
    from sdnet.checkpoint import WEIGHTS, load_model
    from sdnet.data.run_loaders import make_loaders
    from sdnet.device import setup_distributed

    device = resolve_device(cfg.device)
    ddp, device = setup_distributed(device)
    model, _ = load_model(Path(out) / WEIGHTS, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    test = make_loaders(cfg, device, ddp).test
    result = evaluate(model, test, device=device, bf16=False, channels_last=cfg.channels_last, distributed=ddp.world_size > 1)
    return {k: v for k, v in result.items() if k != "n"}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _test_batches(cfg: dict[str, Any], args: argparse.Namespace, device: torch.device, classes: int, checkpoint: str) -> tuple[Batches, str]:
    """The test split the command scores: the checkpoint's dataset unless ``--dataset`` says
    otherwise, as the batches of :func:`evaluate` and the dataset's display name."""
    from sdnet.checkpoint import CheckpointError

    dataset, root = args.dataset or cfg["dataset"], args.data_root or cfg["data_root"]
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if dataset == "imagenet":
        from sdnet.data.imagenet import imagenet_loaders

        if args.limit is not None:
            raise ConfigError("--limit takes a class-balanced subset of a CIFAR-sized set; ImageNet's is not loaded into memory")
        test = imagenet_loaders(root, args.batch_size, workers=cfg.get("workers", 8))[1]
        name, count = "ImageNet-1k", len(test.dataset.classes)
    else:
        from sdnet.data import DeviceLoader, load_dataset

        try:
            _, split = load_dataset(dataset, root, verify=not args.no_verify and cfg["verify"], limit=args.limit or cfg["limit"])
        except ValueError as error:
            raise ConfigError(str(error)) from None
        test, name, count = list(DeviceLoader(split, args.batch_size, train=False, device=device)), split.name, len(split.classes)
    if count != classes:
        raise CheckpointError(f"{checkpoint} classifies {classes} classes ({cfg['dataset']}), {name} has {count}: "
                              "evaluate it on the dataset it was trained on")
    return test, name


@command_line
def main(argv: list[str] | None = None) -> None:
    from sdnet.checkpoint import load_model, unfinished
    from sdnet.device import precision_name
    from sdnet.strict_json import json_ready

    p = argparse.ArgumentParser(description="Evaluate a trained sdnet checkpoint (top-1/top-5, optionally per test-time lambda).")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on (imagenet: an ImageFolder tree, --data-root)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--no-verify", action="store_true", help="accept non-official copies of the dataset files")
    p.add_argument("--limit", type=int, default=None, help="a class-balanced subset of the test set")
    p.add_argument("--lambdas", type=float, nargs="*", default=None)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["float32", "bf16", "auto"], default="float32",
                   help="float32 (default): the number the pipeline records for these weights on every machine; "
                        "auto: bf16 where the hardware has it natively (faster, within a few tenths of a point)")
    p.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    model, ckpt = load_model(args.checkpoint, device)
    cfg = ckpt["config"]
    batches, name = _test_batches(cfg, args, device, ckpt["arch"]["num_classes"], args.checkpoint)
    bf16 = use_bf16(device, {"float32": False, "bf16": True, "auto": "auto"}[args.precision])
    reason = unfinished(ckpt, args.checkpoint)
    result = {"checkpoint": str(args.checkpoint), "epoch": ckpt["epoch"], "epochs": cfg["epochs"], "finished": reason is None,
              "dataset": name, "precision": precision_name(bf16), **evaluate(model, batches, bf16=bf16)}
    if reason:
        print(f"note: {reason}: training did not finish", file=sys.stderr)
    if args.lambdas:
        result["lambda_sweep"] = lambda_sweep(model, batches, args.lambdas, bf16=bf16)
    text = json.dumps(json_ready(result), indent=2, allow_nan=False)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
