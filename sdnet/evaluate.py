"""Evaluation: top-1/top-5, throughput, accuracy against test-time lambda.

    python -m sdnet.evaluate --checkpoint reports/quick/sdnet18/checkpoint.pt --lambdas 0.1 0.2 0.5

Accuracy is accumulated on the device and read back once per evaluation (no per-batch host sync).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdnet.csc import csc_lambda, csc_layers


def autocast_for(device: torch.device, bf16: bool | None) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA by default, nothing on CPU (float32) unless asked."""
    use = device.type == "cuda" if bf16 is None else bf16
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else contextlib.nullcontext()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use device: cpu or auto")
    return device


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    device: str | torch.device | None = None,
    bf16: bool | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy (in %) and mean cross-entropy of ``model`` over ``batches``.

    Works in eval mode (BatchNorm statistics frozen) and restores the previous mode. Under
    DistributedDataParallel-style sharded batches, call :func:`all_reduce_metrics` on the sums.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # correct@1, correct@5, loss, n
    try:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, bf16):
                logits = model(x)
            logits = logits.float()
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = top5 == y[:, None]
            sums += torch.stack([hits[:, 0].sum(), hits.any(1).sum(), F.cross_entropy(logits, y, reduction="sum"), torch.tensor(len(y), device=device)]).double()
    finally:
        model.train(was_training)
    return metrics_from_sums(sums)


def metrics_from_sums(sums: Tensor) -> dict[str, float]:
    top1, top5, loss, n = sums.tolist()
    if n == 0:
        raise ValueError("evaluate: no batches")
    return {"top1": 100 * top1 / n, "top5": 100 * top5 / n, "loss": loss / n, "n": int(n)}


def lambda_sweep(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], lambdas: Sequence[float], **kwargs) -> list[dict[str, float]]:
    """Accuracy at each test-time lambda (all CSC layers set to it), one row per lambda.

    A model without CSC layers (a ResNet baseline) is evaluated once; its accuracy is repeated.
    """
    if not csc_layers(model):
        row = evaluate(model, batches, **kwargs)
        return [{"lam": float(lam), **row} for lam in lambdas]
    rows = []
    for lam in lambdas:
        with csc_lambda(model, float(lam)):
            rows.append({"lam": float(lam), **evaluate(model, batches, **kwargs)})
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(
    model: nn.Module,
    *,
    batch_size: int = 128,
    image_size: int = 32,
    num_classes: int = 10,
    train: bool = True,
    steps: int = 20,
    warmup: int = 5,
    device: str | torch.device = "cpu",
    bf16: bool | None = None,
    channels_last: bool | None = None,
) -> float:
    """Images per second of a training step (forward, loss, backward, SGD step) or an eval step.

    Synthetic inputs of the given size; warm-up steps excluded; the device is synchronised before
    the clock is read (on CUDA, events would give the same within noise for these step sizes).
    """
    device = torch.device(device)
    channels_last = device.type == "cuda" if channels_last is None else channels_last
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    x = torch.rand(batch_size, 3, image_size, image_size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train(train)

    def step() -> None:
        if train:
            with autocast_for(device, bf16):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad(), autocast_for(device, bf16):
                model(x)

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    from sdnet.checkpoint import load_model
    from sdnet.data import DeviceLoader, load_dataset

    p = argparse.ArgumentParser(description="Evaluate a trained sdnet checkpoint (top-1/top-5, optionally per test-time lambda).")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", help="default: the dataset the checkpoint was trained on")
    p.add_argument("--data-root", default=None)
    p.add_argument("--no-verify", action="store_true", help="accept non-official copies of the dataset files")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--lambdas", type=float, nargs="*", default=None)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    model, ckpt = load_model(args.checkpoint, device)
    cfg = ckpt["config"]
    _, test = load_dataset(args.dataset or cfg["dataset"], args.data_root or cfg["data_root"], verify=not args.no_verify and cfg["verify"], seed=cfg["seed"], limit=args.limit or cfg["limit"])
    batches = list(DeviceLoader(test, args.batch_size, train=False, device=device))
    result = {"checkpoint": str(args.checkpoint), "dataset": test.name, **evaluate(model, batches)}
    if args.lambdas:
        result["lambda_sweep"] = lambda_sweep(model, batches, args.lambdas)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
