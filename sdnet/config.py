"""How a network is trained: :class:`TrainConfig`, the paper's recipes, the architectures, and the
typed, validated sections both it and the study's parameters (:mod:`sdnet.params`) are built from.

A bad value fails here, before any work, with a message naming the key (its full path in
params.yaml or the command-line flag) and what is allowed; this module knows the types, the rules
and the recipe defaults (../shared/PAPER.md, "Training recipes"). It is part of the code that
decides a network's weights (:func:`sdnet.provenance.weights_code`): nothing about the study
(profiles, chapters, where the repository is) lives here.

Values arrive from YAML or from the command line (read as YAML). YAML 1.1 reads ``5e-4`` as the
*string* "5e-4" (it wants ``5.0e-4``), so a number field also takes a string that is a number;
nothing else is coerced: a boolean is ``true``/``false`` and nothing else, and ``true`` is not a
number.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("synthetic", "cifar10", "cifar100", "cifar10-jpeg", "imagenet")
SCHEDULES = ("cosine", "step", "onecycle")
DEVICES = ("auto", "cpu", "cuda")


class SdnetError(Exception):
    """A mistake the user can fix (bad parameters, missing or damaged data, an unusable
    checkpoint, a diverged run): the message says what happened and what to do."""


class ConfigError(SdnetError, ValueError):
    """A parameter has a value that is not allowed."""


def command_line(main):
    """Wrap a ``main(argv)`` so that an :class:`SdnetError` (or a missing file) ends the program
    with its message on stderr and exit status 2, not a traceback: the message is the help."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None, **options):
        try:
            return main(argv, **options)
        except (SdnetError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return run


@dataclass(frozen=True)
class Arch:
    """A named network of ``sdnet.models.build``: a ResNet with these BasicBlock counts per stage,
    whose stem conv (``csc_stem``) and 3x3 block convs (``csc_blocks``) are CSC layers or not.
    Kept here, free of torch, so that parameters are checked before anything heavy is imported."""

    blocks: tuple[int, int, int, int]
    csc_stem: bool
    csc_blocks: bool


ARCHS = {
    "resnet18": Arch((2, 2, 2, 2), csc_stem=False, csc_blocks=False),
    "resnet34": Arch((3, 4, 6, 3), csc_stem=False, csc_blocks=False),
    "sdnet18": Arch((2, 2, 2, 2), csc_stem=True, csc_blocks=False),
    "sdnet34": Arch((3, 4, 6, 3), csc_stem=True, csc_blocks=False),
    "sdnet18_all": Arch((2, 2, 2, 2), csc_stem=True, csc_blocks=True),
    "sdnet34_all": Arch((3, 4, 6, 3), csc_stem=True, csc_blocks=True),
}


# ---------------------------------------------------------------------------------------------
# Typed sections
# ---------------------------------------------------------------------------------------------


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is list:
        return "a list of " + {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}.get(args[0], "values")
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def _convert(value: Any, kind: Any, where: str) -> Any:
    """``value`` as the type ``kind`` (a field's annotation), or a ConfigError naming ``where``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where} = {value!r} is not allowed: expected {_describe(kind)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} = {value!r} is not allowed: expected {_describe(kind)}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r} is not allowed: expected a mapping (key: value)")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    ok = False
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where} = {value!r} is not allowed: expected {_describe(kind)}")
    return value


class Section:
    """Mixin of the typed sections: :meth:`from_dict` builds one from a params.yaml mapping,
    refusing unknown and missing keys and values of the wrong type; :meth:`check` (per section)
    tests the ranges. ``where`` is the section's path in params.yaml, for the messages."""

    @classmethod
    def from_dict(cls, values: Any, where: str = ""):
        label = where or cls.__name__
        if not isinstance(values, dict):
            raise ConfigError(f"{label} must be a mapping of keys to values, got {values!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown key {join_key(where, key)!r}{hint}; {label} takes: {', '.join(fields)}")
        missing = [
            name for name, f in fields.items()
            if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{label} is missing {', '.join(repr(join_key(where, m)) for m in missing)}")
        converted = {key: _convert(value, hints[key], join_key(where, key)) for key, value in values.items()}
        section = cls(**converted)
        section.check(where)
        return section

    def check(self, where: str = "") -> None:
        """Range checks; overridden by each section."""

    def need(self, ok: bool, key: str, allowed: str, where: str = "") -> None:
        if not ok:
            raise ConfigError(f"{join_key(where, key)} = {getattr(self, key)!r} is not allowed: {allowed}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def join_key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainConfig(Section):
    """Everything a training run depends on. Defaults: the paper's CIFAR recipe for SDNet-18."""

    # what
    model: str = "sdnet18"
    dataset: str = "cifar10"
    data_root: str = "data"
    verify: bool = True  # check the official md5 of dataset files
    limit: int | None = None  # a class-balanced subset of `limit` images of each split (quick runs)
    width: int = 64  # stem channels (the paper's 64); smaller for CPU-sized runs
    # the CSC layers
    lam: float = 0.1
    n_steps: int = 2
    shortcut: bool = True  # -All models only
    # optimisation (paper, CIFAR: SGD nesterov, lr 0.1, wd 5e-4, batch 128, 220 epochs cosine)
    epochs: int = 220
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = True  # the paper's: decay every parameter; false: only conv/linear weights and dictionaries
    schedule: str = "cosine"  # cosine per iteration to eta_min; step: x0.1 at milestones; onecycle
    eta_min: float = 1e-6
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])
    warmup_epochs: float = 0.0  # linear warm-up (onecycle uses it as its ramp)
    label_smoothing: float = 0.0
    zero_init_residual: bool = False  # start each residual block as the identity (last BN scale 0; Goyal et al. 2017)
    # progressive resizing (fast.ai's DAWNBench entries, FFCV): early epochs on downscaled images
    start_size: int | None = None  # side of the training images in the first epoch (null: full size throughout)
    ramp_epochs: int = 0  # epochs over which the side grows linearly (in steps of 4 pixels) to full size
    # machinery
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    bf16: bool | str = "auto"  # auto: bf16 autocast on CUDA and on CPUs with native bf16 (AMX/AVX512-BF16)
    channels_last: bool = True  # NHWC tensors: faster with cuDNN and with oneDNN on CPUs (+25% here)
    compile: bool = False  # torch.compile the model (CUDA)
    workers: int = 8  # ImageNet DataLoader workers
    progress: bool = True

    def __post_init__(self) -> None:
        # Direct construction (TrainConfig(lr=...)) is checked as strictly as a params.yaml section.
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _convert(getattr(self, f.name), hints[f.name], f.name))
        self.check()

    def validate(self) -> None:
        self.__post_init__()

    @classmethod
    def from_dict(cls, values: Any, where: str = "") -> TrainConfig:
        try:
            return super().from_dict(values, where)
        except ConfigError as error:  # a range check of __post_init__ names the bare key: add the path
            key = str(error).split(" ", 1)[0]
            if where and key in {f.name for f in dataclasses.fields(cls)}:
                raise ConfigError(f"{where}.{error}") from None
            raise

    def check(self, where: str = "") -> None:
        need = lambda ok, key, allowed: self.need(ok, key, allowed, where)  # noqa: E731
        need(self.model in ARCHS, "model", f"one of {sorted(ARCHS)}")
        need(self.dataset in DATASETS, "dataset", f"one of {list(DATASETS)}")
        # Below 8 channels, oneDNN's CPU kernel for the weight gradient of a strided 1x1 convolution
        # (the downsampling shortcuts take `width` channels) corrupts memory or returns wrong
        # gradients on CPUs without AVX-512 (oneDNN#6035): no width below 8 is trained.
        need(self.width >= 8, "width", "an integer >= 8 (64 in the paper; narrower networks hit a oneDNN bug on CPUs, oneDNN#6035)")
        need(self.limit is None or self.limit > 0, "limit", "a positive integer or null")
        need(self.lam >= 0, "lam", "a number >= 0")
        need(self.n_steps >= 1, "n_steps", "an integer >= 1")
        need(self.shortcut or self.model.endswith("_all"), "shortcut", "false only for the -All models")
        need(self.epochs >= 1, "epochs", "an integer >= 1")
        need(self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(self.lr > 0, "lr", "a number > 0")
        need(0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(self.schedule in SCHEDULES, "schedule", f"one of {list(SCHEDULES)}")
        need(0 <= self.eta_min < self.lr, "eta_min", "a number in [0, lr)")
        need(all(m > 0 for m in self.milestones), "milestones", "a list of positive epochs")
        need(0 <= self.warmup_epochs < self.epochs, "warmup_epochs", "a number in [0, epochs)")
        need(0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)")
        need(self.start_size is None or (self.start_size >= 8 and self.dataset != "imagenet"), "start_size",
             "null, or a side >= 8 pixels (CIFAR-sized data only)")
        need(0 <= self.ramp_epochs < self.epochs and (self.start_size is None or self.ramp_epochs >= 1), "ramp_epochs",
             "an integer in [1, epochs) with start_size, else 0")
        need(self.seed >= 0, "seed", "an integer >= 0")
        need(self.device in DEVICES, "device", f"one of {list(DEVICES)}")
        need(self.bf16 in ("auto", True, False), "bf16", "auto, true or false")
        need(self.workers >= 0, "workers", "an integer >= 0")


# The paper's recipes, and a fast GPU schedule.
RECIPES: dict[str, dict[str, Any]] = {
    "cifar": dict(epochs=220, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine", eta_min=1e-6),
    "imagenet": dict(dataset="imagenet", epochs=100, batch_size=512, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="step", milestones=[30, 60, 90]),
    # Not the paper's: a short one-cycle schedule with bigger batches and label smoothing, for a
    # CIFAR-10 result in minutes on one GPU (params.yaml's `fast` profile runs it for 30 epochs).
    "fast": dict(epochs=40, batch_size=512, lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup_epochs=8.0, label_smoothing=0.1, eta_min=0.0),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` with a named recipe's values, then ``overrides``."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return TrainConfig.from_dict({**RECIPES[name], **overrides})
