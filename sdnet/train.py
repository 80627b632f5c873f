"""Training: one function, :func:`train`, and its command line.

    python -m sdnet.train --out runs/sdnet18 --model sdnet18 --dataset cifar10 --epochs 220
    python -m sdnet.stages.train sdnet18 --profile paper --out runs/sdnet18 --dataset cifar100   # a run of params.yaml
    torchrun --nproc_per_node=8 -m sdnet.train --out runs/in1k --recipe imagenet --data-root /imagenet

The loop reads top to bottom: data -> model -> optimiser -> per epoch {train, write the curve
and the resume state}. What it writes to ``out``:

- ``resume.pt``      while it trains: the last completed epoch (atomic; a restarted run resumes from it)
- ``history.csv``    one row per epoch (loss, accuracy, learning rate, time, images/s, precision, machine)
- ``weights.pt``     when it has finished: the trained network (``sdnet.checkpoint``); resume.pt goes
- ``training.json``  the run's record (training loss, wall time, images/s, parameters, machines)

Training never looks at the test split: the command line measures the finished network on it
afterwards (:func:`sdnet.evaluate.test_metrics`), the pipeline in its ``evaluate@<run>`` stage.

The device decides the fast path: the data stays on the device and augmentation is batched there;
the step runs under bf16 autocast where the hardware has native bf16 (``sdnet.device.use_bf16``: CUDA,
CPUs with AMX or AVX512-BF16), optionally torch.compile'd; tensors are channels_last
(NHWC) everywhere, which cuDNN and oneDNN (CPUs) both run faster. Under
``torchrun`` the same code trains with DistributedDataParallel (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from sdnet import checkpoint
from sdnet.config import RECIPES, ConfigError, SdnetError, TrainConfig, command_line, recipe
from sdnet.data.run_loaders import make_loaders
from sdnet.device import autocast_for, device_kind, precision_name, resolve_device, setup_distributed, use_bf16
from sdnet.models import count_parameters, zero_init_residual
from sdnet.provenance import weights_fingerprint

# Parameters that do not change the result: a checkpoint made with other values still resumes.
# bf16: a resumed run keeps its precision unless told to switch (_precision), and records it;
# data_root and verify: where the data is, checked by its fingerprint (the repository moves).
_RESUME_NEUTRAL = {"progress", "workers", "device", "compile", "bf16", "data_root", "verify"}


class TrainingDiverged(SdnetError, RuntimeError):
    """The loss became NaN or infinite."""


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def learning_rate(cfg: TrainConfig, iteration: int, steps_per_epoch: int) -> float:
    """Learning rate at ``iteration`` (updated every iteration, as in the authors' cosine schedule)."""
    epoch = iteration / steps_per_epoch
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.schedule == "onecycle":  # linear up over the warm-up, then linear down to eta_min
        if iteration < warmup:
            return cfg.lr * (iteration + 1) / warmup
        return cfg.eta_min + (cfg.lr - cfg.eta_min) * max(0.0, (total - iteration) / (total - warmup))
    if iteration < warmup:
        return cfg.lr * (iteration + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (iteration - warmup) / max(1, total - warmup)
        return cfg.eta_min + (cfg.lr - cfg.eta_min) * (1 + math.cos(math.pi * progress)) / 2
    return cfg.lr * 0.1 ** sum(epoch >= m for m in cfg.milestones)  # step


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True) -> list[dict[str, Any]]:
    """The optimiser's parameter groups. The paper decays every parameter. ``decay_norm_and_bias``
    False leaves the BatchNorm scales/shifts and the biases (every parameter of at most one
    dimension) undecayed, as large-batch and fast recipes do (Goyal et al. 2017, Jia et al. 2018):
    a conv weight followed by BatchNorm is scale-invariant, so its decay only sets its effective
    learning rate, while decay on a BN scale or shift pulls the function itself toward zero.
    What it did here: the ablation in params.yaml's cpu profile."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def image_size(cfg: TrainConfig, epoch: int, full: int) -> int:
    """The side of the training images in ``epoch`` (0-based): ``start_size`` in the first epoch,
    growing linearly over ``ramp_epochs`` in steps of 4 pixels, then ``full`` (progressive resizing:
    the early epochs, which learn coarse features, cost a fraction of a full-size epoch)."""
    if cfg.start_size is None or epoch >= cfg.ramp_epochs:
        return full
    side = cfg.start_size + (full - cfg.start_size) * epoch / cfg.ramp_epochs
    return min(full, 4 * int(side // 4))


def set_epoch(loader, epoch: int, size: int | None = None) -> None:
    if hasattr(loader, "set_epoch"):  # DeviceLoader
        loader.set_epoch(epoch, size)
    elif hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _progress(iterable, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def _stale_reasons(saved: dict[str, Any], cfg: TrainConfig, provenance: dict[str, str]) -> list[str]:
    """Why a saved run (resume state or finished weights) is not this run's: other parameters,
    code or data."""
    now, before = cfg.to_dict(), saved["config"]
    changed = {k: (before.get(k), v) for k, v in now.items() if k not in _RESUME_NEUTRAL and before.get(k) != v}
    reasons = [f"parameters ({'; '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items())})"] if changed else []
    for key, what in (("code", "the sdnet code that decides the weights"), ("data", "the data")):
        if saved.get("provenance", {}).get(key) != provenance[key]:
            reasons.append(f"{what} (fingerprint {saved.get('provenance', {}).get(key)} -> {provenance[key]})")
    return reasons


# The columns of history.csv: one row per epoch, with the machine and precision it ran in (a run
# resumed on another machine says so in the rows it trained there).
HISTORY_COLUMNS = ("epoch", "lr", "image_size", "train_loss", "train_top1", "epoch_seconds", "images_per_second", "precision", "device")


def _write_history(rows: list[dict[str, Any]], path: Path) -> None:
    """All rows so far (a resume rewrites the file from the resume state's rows)."""
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _write_json(path: Path, values: dict[str, Any]) -> None:
    """Strict JSON (every value here is a finite number, a string or a list of them)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(values, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _precision(cfg: TrainConfig, device: torch.device, resumed: dict[str, Any] | None) -> bool:
    """Whether this run's steps use bf16. A resumed run keeps the precision it started in when
    ``bf16`` is ``auto``, also on a machine whose own choice differs (bf16 is emulated, and slow,
    on a CPU without native bf16); ``bf16: true/false`` switches it (recorded per epoch)."""
    if resumed is None or cfg.bf16 != "auto":
        return use_bf16(device, cfg.bf16)
    kept = resumed["precision"] == "bf16"
    if kept != use_bf16(device, "auto"):
        print(f"continuing in {precision_name(kept)}, the precision this run started in (set bf16 to switch)", flush=True)
    return use_bf16(device, kept) if kept else False


def _open_saved(out: Path, cfg: TrainConfig, provenance: dict[str, str], restart_stale: bool) -> tuple[dict | None, dict | None]:
    """The finished weights and the resume state in ``out`` that belong to this run (None where
    absent). One made by another run is an error, or with ``restart_stale`` deleted with the rest
    of the folder."""
    weights, resume = out / checkpoint.WEIGHTS, out / checkpoint.RESUME
    try:
        found = {path: checkpoint.load(path) for path in (weights, resume) if path.exists()}
        for path, saved in found.items():
            if reasons := _stale_reasons(saved, cfg, provenance):
                raise checkpoint.StaleCheckpoint(f"{path} was made by another run: other {' and '.join(reasons)}")
    except checkpoint.CheckpointError as error:  # stale, unreadable, or from another sdnet version
        if not restart_stale:
            raise type(error)(f"{error}. Delete it to start over, or use another output folder.") from None
        print(f"{error}: training from scratch", flush=True)
        for stale in out.iterdir():
            stale.unlink() if stale.is_file() else shutil.rmtree(stale)
        return None, None
    return found.get(weights), found.get(resume)


def train(cfg: TrainConfig, out: str | Path, *, restart_stale: bool = False) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.dataset``; returns the run's record (``training.json``).

    Writes to ``out``: ``resume.pt`` after every epoch (atomic; a restarted run resumes from it,
    and on a CPU of the same kind with the same seed ends bit-identical to an uninterrupted run),
    ``history.csv`` (one row per epoch), and when the last epoch is done ``weights.pt`` (the
    finished network) and ``training.json``, after which ``resume.pt`` is removed. The test split
    is not looked at: what the network scores is measured on ``weights.pt`` afterwards
    (:func:`sdnet.evaluate.test_metrics`, the pipeline's ``evaluate@<run>`` stage).

    A run already finished in ``out`` returns its record at once. A file in ``out`` made by
    another run (other parameters, code or data: ``StaleCheckpoint``) or unreadable is an error,
    or, with ``restart_stale`` (the pipeline's choice), discarded with a message.
    """
    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    ddp, device = setup_distributed(device)
    cuda = device.type == "cuda"
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    torch.manual_seed(cfg.seed)  # model initialisation (identical on every rank)
    if cuda:
        torch.backends.cudnn.benchmark = True

    data = make_loaders(cfg, device, ddp)
    train_loader = data.train
    arch = checkpoint.architecture(cfg.model, data.num_classes, data.stem, lam=cfg.lam, n_steps=cfg.n_steps, shortcut=cfg.shortcut, width=cfg.width)
    model = checkpoint.build_from(arch).to(device, memory_format=memory_format)
    if cfg.zero_init_residual:
        zero_init_residual(model)
    optimizer = torch.optim.SGD(parameter_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)

    # What the weights depend on besides the parameters: a run saved by code that trains
    # differently, or on other data, is not this run's, even when the parameters match.
    provenance = {"code": weights_fingerprint(), "data": data.fingerprint}
    resume_path, weights_path = out / checkpoint.RESUME, out / checkpoint.WEIGHTS
    checkpoint.remove_temporaries(resume_path)  # left by a run killed while it was saving
    checkpoint.remove_temporaries(weights_path)
    finished, saved = _open_saved(out, cfg, provenance, restart_stale)
    if finished is not None:
        if ddp.main:
            resume_path.unlink(missing_ok=True)  # a run killed between writing its weights and removing it
        return finished["training"]
    start_epoch, history, train_time, images_seen = 0, [], 0.0, 0
    if saved is not None:
        checkpoint.load_weights(model, saved, expected_arch=arch)
        optimizer.load_state_dict(saved["optimizer"])
        start_epoch, history = saved["epoch"], saved["history"]
        train_time, images_seen = saved["train_time"], saved["images_seen"]
        if ddp.main:
            _write_history(history, out / "history.csv")  # the resume state's, whatever a killed run left
            print(f"resuming {out} from epoch {start_epoch}/{cfg.epochs}", flush=True)
    bf16 = _precision(cfg, device, saved)
    precision, ran_on = precision_name(bf16), device_kind(device)

    step_model: nn.Module = model
    if ddp.world_size > 1:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if cfg.compile:
        step_model = torch.compile(step_model)

    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the training set: lower it")
    epochs = _progress(range(start_epoch, cfg.epochs), cfg.progress and ddp.main, desc=f"{cfg.model} on {data.name}", unit="epoch", initial=start_epoch, total=cfg.epochs)
    for epoch in epochs:
        size = image_size(cfg, epoch, train_loader.images.shape[-1])
        set_epoch(train_loader, epoch, size)
        step_model.train()
        sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, n
        if cuda:
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        for i, (x, y) in enumerate(train_loader):
            iteration = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, iteration, steps_per_epoch)
            x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            y = y.to(device, non_blocking=True)
            with autocast_for(device, bf16):
                logits = step_model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum(), torch.tensor(len(y), device=device)]).double()
        if ddp.world_size > 1:
            dist.all_reduce(sums)
        loss_sum, correct, n = sums.tolist()  # one host sync per epoch
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - tic
        # Cross-entropy starts near ln(classes); far above it (or not finite) the run has diverged,
        # and a resume state of it would only be resumed into more nonsense.
        if not math.isfinite(loss_sum) or loss_sum / n > max(10.0, 10 * math.log(data.num_classes)):
            kept = f"the last good resume state (epoch {history[-1]['epoch']}) is kept in {resume_path}" if history else "nothing was saved"
            raise TrainingDiverged(
                f"training diverged: the mean training loss was {loss_sum / n:.4g} in epoch {epoch + 1}; {kept} and no weights "
                "were written. Lower the learning rate (or lambda) and run again."
            )
        train_time += seconds
        images_seen += int(n)

        row: dict[str, Any] = dict(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"], image_size=size, train_loss=loss_sum / n, train_top1=100 * correct / n,
                                   epoch_seconds=seconds, images_per_second=n / seconds, precision=precision, device=ran_on)
        history.append(row)
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(loss=f"{row['train_loss']:.3f}", train_top1=f"{row['train_top1']:.2f}")
        if ddp.main and epoch + 1 < cfg.epochs:  # the resume state first: history.csv never runs ahead of it
            checkpoint.save_atomic(
                dict(format=checkpoint.FORMAT, config=cfg.to_dict(), arch=arch, epoch=epoch + 1, model=model.state_dict(),
                     solver=checkpoint.solver_state(model), optimizer=optimizer.state_dict(), history=history,
                     train_time=train_time, images_seen=images_seen, dataset=data.name, provenance=provenance, precision=precision),
                resume_path,
            )
            _write_history(history, out / "history.csv")

    record = dict(
        model=cfg.model, dataset=data.name, epochs=cfg.epochs, seed=cfg.seed, train_loss=history[-1]["train_loss"], train_top1=history[-1]["train_top1"],
        train_seconds=train_time, images_per_second=images_seen / train_time if train_time else None,
        parameters=count_parameters(model), world_size=ddp.world_size, threads=torch.get_num_threads(), lam=cfg.lam, n_steps=cfg.n_steps,
        precisions=sorted({r["precision"] for r in history}), devices=sorted({r["device"] for r in history}), **provenance,
    )
    if ddp.main:  # weights, record and curves, then the resume state goes: a kill in between loses nothing
        checkpoint.save_atomic(
            dict(format=checkpoint.FORMAT, config=cfg.to_dict(), arch=arch, epoch=cfg.epochs, model=model.state_dict(),
                 solver=checkpoint.solver_state(model), dataset=data.name, provenance=provenance, training=record),
            weights_path,
        )
        _write_history(history, out / "history.csv")
        _write_json(out / "training.json", record)
        resume_path.unlink(missing_ok=True)
    if ddp.world_size > 1:
        dist.barrier()  # the other ranks return once the weights are on disk (the command line then scores them)
    return record


# ---------------------------------------------------------------------------------------------
# Command line: every TrainConfig field is a flag (a pipeline run's values: sdnet.stages.train)
# ---------------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)  # numbers, booleans, null and lists as in params.yaml


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--batch-size 64``, values read as YAML); a flag not given
    is absent from the parsed arguments, so that it overrides only what it names."""
    for f in dataclasses.fields(TrainConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_parse_value, default=argparse.SUPPRESS, metavar="V")


def config_from_args(argv: list[str] | None = None) -> tuple[TrainConfig, Path]:
    p = argparse.ArgumentParser(description="Train a ResNet/SDNet (defaults: the paper's CIFAR recipe). "
                                "To train a run of params.yaml with its profile's values: python -m sdnet.stages.train <run> --profile <name> --out <folder>.")
    p.add_argument("--out", required=True, type=Path, help="output folder (weights.pt, history.csv, training.json; resume.pt while it trains)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="start from a named recipe")
    add_config_flags(p)
    args = vars(p.parse_args(argv))
    out, recipe_name = args.pop("out"), args.pop("recipe")
    cfg = recipe(recipe_name, **args) if recipe_name else TrainConfig.from_dict(args)
    return cfg, out


@command_line
def main(argv: list[str] | None = None, test: Callable[[TrainConfig, Path], dict[str, Any]] | None = None) -> None:
    """Train, then print the run's record and, with ``test``, what the trained network scores on
    the test split (``test(cfg, out)``, measured on ``out/weights.pt``)."""
    cfg, out = config_from_args(argv)
    try:
        record = train(cfg, out)
        if test is not None:
            record = {**record, **{f"test_{k}": v for k, v in test(cfg, out).items()}}
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(record, indent=2, allow_nan=False))


if __name__ == "__main__":
    # The command line also reports test accuracy. This import runs only here, not when the trainer
    # is imported: the pipeline measures trained networks in a stage of its own (evaluate@<run>), so
    # that a change to the evaluation code re-evaluates them without retraining them
    # (sdnet.provenance.weights_code).
    from sdnet.evaluate import test_metrics

    main(test=test_metrics)
