"""Typed, validated parameters: every section of params.yaml, and the paper's training recipes.

A bad value fails here, before any work, with a message naming the key (its full path in
params.yaml) and what is allowed. params.yaml is the single place where a study's values are
written; this module knows the types, the rules and the recipe defaults
(../shared/PAPER.md, "Training recipes").

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
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
                raise ConfigError(f"unknown key {_join(where, key)!r}{hint}; {label} takes: {', '.join(fields)}")
        missing = [
            name for name, f in fields.items()
            if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{label} is missing {', '.join(repr(_join(where, m)) for m in missing)}")
        converted = {key: _convert(value, hints[key], _join(where, key)) for key, value in values.items()}
        section = cls(**converted)
        section.check(where)
        return section

    def check(self, where: str = "") -> None:
        """Range checks; overridden by each section."""

    def need(self, ok: bool, key: str, allowed: str, where: str = "") -> None:
        if not ok:
            raise ConfigError(f"{_join(where, key)} = {getattr(self, key)!r} is not allowed: {allowed}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _join(where: str, key: str) -> str:
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


# ---------------------------------------------------------------------------------------------
# The study: params.yaml
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec(Section):
    """A network the pipeline can train (params.yaml ``runs``): a model of ``sdnet.models``."""

    model: str
    shortcut: bool = True

    def check(self, where: str = "") -> None:
        self.need(self.model in ARCHS, "model", f"one of {sorted(ARCHS)}", where)
        self.need(self.shortcut or self.model.endswith("_all"), "shortcut", "false only for the -All models", where)


@dataclass(frozen=True)
class DataParams(Section):
    datasets: list[str]
    root: str = "data"
    verify: bool = True
    limit: int | None = None  # class-balanced subset of each split (null: all)

    def check(self, where: str = "") -> None:
        choices = [d for d in DATASETS if d != "imagenet"]
        self.need(bool(self.datasets) and all(d in choices for d in self.datasets), "datasets", f"a non-empty list of {choices}", where)
        self.need(self.limit is None or self.limit > 0, "limit", "a positive integer or null", where)


@dataclass(frozen=True)
class TrainParams(Section):
    """A profile's ``train`` section: which runs it trains, on which seeds, with which
    TrainConfig values (``config``, every other key of the section), and per-run overrides
    (TrainConfig values, and ``seeds`` for a run trained on other seeds than the rest)."""

    runs: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    per_run: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Any, where: str = "") -> TrainParams:
        if not isinstance(values, dict):
            raise ConfigError(f"{where or 'train'} must be a mapping of keys to values, got {values!r}")
        own = {"runs", "seeds", "per_run"}
        if "seed" in values:
            raise ConfigError(f"{_join(where, 'seed')}: a profile lists its seeds as `seeds: [0, 1, 2]`")
        fixed = {"model", "dataset", "shortcut", "data_root", "verify", "limit"}  # from runs: and data:
        for key in values:
            if key in fixed:
                raise ConfigError(f"{_join(where, key)} cannot be set here: it comes from `runs:` or the profile's `data:` section")
        config = {k: v for k, v in values.items() if k not in own}
        TrainConfig.from_dict(config, where)  # every TrainConfig key and value, checked once here
        section = super().from_dict({**{k: v for k, v in values.items() if k in own}, "config": config}, where)
        for seeds, key in [(section.seeds, "seeds")] + [(o["seeds"], f"per_run.{r}.seeds") for r, o in section.per_run.items() if "seeds" in o]:
            if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
                    and len(set(seeds)) == len(seeds)):
                raise ConfigError(f"{_join(where, key)} = {seeds!r} is not allowed: a non-empty list of distinct integers >= 0")
        return section

    def seeds_for(self, run: str) -> list[int]:
        """The seeds ``run`` is trained on: its own ``per_run`` ``seeds``, or the section's."""
        return self.per_run.get(run, {}).get("seeds", self.seeds)

    def overrides(self, run: str) -> dict[str, Any]:
        """``run``'s TrainConfig overrides (its ``per_run`` entry without ``seeds``)."""
        return {k: v for k, v in self.per_run.get(run, {}).items() if k != "seeds"}


# The runs a profile may take as checkpoint files instead of training them (``checkpoints``): the
# authors' released CIFAR networks (sdnet.released), and a ResNet-18 of theirs or trained by this
# project, as the baseline of chapters 3 and 4.
CHECKPOINT_RUNS = ("sdnet18", "sdnet18_all", "sdnet18_all_noshortcut", "resnet18")


@dataclass(frozen=True)
class CheckpointParams(Section):
    """A profile's ``checkpoints``: per run, a checkpoint file to use instead of training it
    (a path, absolute or relative to the repository), or null. SDNet-18 is needed by chapters 3-5
    (trained or given); the others are optional: without a ResNet-18 the chapters compare with
    the paper's ResNet-18 numbers, without SDNet-18-All (no shortcut) chapter 5 shows the stem only."""

    sdnet18: str | None = None
    sdnet18_all: str | None = None
    sdnet18_all_noshortcut: str | None = None
    resnet18: str | None = None

    def check(self, where: str = "") -> None:
        for run in CHECKPOINT_RUNS:
            self.need(getattr(self, run) is None or bool(getattr(self, run).strip()), run, "a path to a checkpoint file, or null", where)

    def given(self) -> dict[str, str]:
        """The runs given as files: run -> path as written."""
        return {run: path for run in CHECKPOINT_RUNS if (path := getattr(self, run)) is not None}


# The chapters' sections of a profile: validated by sdnet.chapter_config (kept out of this module,
# which decides how networks are trained, so that a new chapter parameter retrains nothing).
CHAPTER_SECTIONS = ("csc_layer", "robustness", "adversarial", "visualize")


@dataclass(frozen=True)
class Profile(Section):
    """One scale of the study (params.yaml ``profiles.<name>``). ``chapters`` holds the chapters'
    sections (:data:`CHAPTER_SECTIONS`) as read, or validated by :func:`sdnet.chapter_config.parse_chapters`;
    ``profile.robustness`` and the like read them."""

    data: DataParams
    train: TrainParams
    checkpoints: CheckpointParams = field(default_factory=CheckpointParams)
    # A frozen earlier run of this study (a folder of reports/earlier/: its chapters' verdict.csv
    # and about.json), or null: each chapter's verdict then says which verdicts moved since.
    earlier: str | None = None
    chapters: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        chapters = self.__dict__.get("chapters", {})
        if name in chapters:
            return chapters[name]
        raise AttributeError(f"a profile has no section {name!r}")

    @classmethod
    def from_dict(cls, values: Any, where: str = "") -> Profile:
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be a mapping of sections, got {values!r}")
        hints = {k: v for k, v in typing.get_type_hints(cls).items() if k != "chapters"}
        known = [*hints, *CHAPTER_SECTIONS]
        sections: dict[str, Any] = {}
        chapters: dict[str, Any] = {}
        for key, value in values.items():
            if key == "earlier":
                if value is not None and not (isinstance(value, str) and value.strip()):
                    raise ConfigError(f"{_join(where, key)} = {value!r} is not allowed: a folder of reports/earlier/, or null")
                sections[key] = value
            elif key in CHAPTER_SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{_join(where, key)} must be a mapping of keys to values, got {value!r}")
                chapters[key] = value
            elif key in hints:
                sections[key] = hints[key].from_dict(value, _join(where, key))
            else:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown section {_join(where, key)!r}{hint}; a profile has: {', '.join(known)}")
        missing = [k for k in known if k not in sections and k not in chapters and k not in ("checkpoints", "earlier")]
        if missing:
            raise ConfigError(f"{where} is missing the section(s) {', '.join(missing)}")
        profile = cls(**sections, chapters=chapters)
        both = sorted(set(profile.checkpoints.given()) & set(profile.train.runs))
        if both:
            raise ConfigError(f"{where}: {', '.join(both)} both trained (train.runs) and given as a checkpoint file "
                              f"(checkpoints); remove one of the two")
        return profile


@dataclass(frozen=True)
class Params:
    """params.yaml, validated: the active ``profile``, every profile, and the ``runs`` they share."""

    profile: str
    runs: dict[str, RunSpec]
    profiles: dict[str, Profile]

    @property
    def active(self) -> Profile:
        return self.profiles[self.profile]

    def train_config(self, run: str, root: str | Path, dataset: str | None = None, seed: int | None = None) -> TrainConfig:
        """The TrainConfig of ``run`` at the active profile, on ``dataset`` (default: the profile's
        first) with ``seed`` (default: the run's first): the profile's shared values, its data
        section (its root relative to the repository ``root``), the run's overrides
        (``per_run``), then the run's architecture."""
        if run not in self.runs:
            raise ConfigError(f"unknown run {run!r}; params.yaml `runs:` has {', '.join(self.runs)}")
        train, data, spec = self.active.train, self.active.data, self.runs[run]
        values = {
            **train.config, "data_root": str(Path(root) / data.root), "verify": data.verify, "limit": data.limit,
            **train.overrides(run),
            "model": spec.model, "shortcut": spec.shortcut, "dataset": dataset or data.datasets[0],
            "seed": train.seeds_for(run)[0] if seed is None else seed,
        }
        return TrainConfig.from_dict(values, f"profiles.{self.profile}.train")

    def run_dir(self, run: str, root: str | Path, dataset: str | None = None, seed: int | None = None) -> Path:
        """Where the ``train@<run>`` stage trains ``run`` on ``dataset`` with ``seed``:
        ``reports/<profile>/models/<run>/<dataset>/seed<k>/`` under the repository ``root``."""
        seed = self.active.train.seeds_for(run)[0] if seed is None else seed
        return Path(root) / "reports" / self.profile / "models" / run / (dataset or self.active.data.datasets[0]) / f"seed{seed}"


def parse_params(raw: Any, profile: str | None = None, source: str = "params.yaml") -> Params:
    """Validate what a params.yaml mapping says about training: the runs, and every profile's
    data, train, checkpoints and earlier sections. ``profile`` overrides the file's choice. Every
    profile is checked (a typo in an inactive one is caught too), and every run a profile names
    must exist. The chapters' sections are checked by :func:`sdnet.chapter_config.parse_all`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping with `profile`, `runs` and `profiles`")
    for key in raw:
        if key not in ("profile", "runs", "profiles"):
            raise ConfigError(f"{source}: unknown top-level key {key!r}; it has `profile`, `runs` and `profiles`")
    for key in ("profile", "runs", "profiles"):
        if key not in raw:
            raise ConfigError(f"{source} has no `{key}`")
    if not isinstance(raw["runs"], dict) or not raw["runs"]:
        raise ConfigError(f"{source}: `runs` must map run names to architectures, e.g. sdnet18: {{model: sdnet18}}")
    if not isinstance(raw["profiles"], dict) or not raw["profiles"]:
        raise ConfigError(f"{source}: `profiles` must map profile names to their sections")
    runs = {str(name): RunSpec.from_dict(spec, f"runs.{name}") for name, spec in raw["runs"].items()}
    profiles = {str(name): Profile.from_dict(p, f"profiles.{name}") for name, p in raw["profiles"].items()}
    name = profile or raw["profile"]
    if name not in profiles:
        raise ConfigError(f"profile {name!r} is not in {source}; choose one of {sorted(profiles)}")
    for pname, p in profiles.items():
        for key, names in (("train.runs", p.train.runs), ("train.per_run", list(p.train.per_run))):
            unknown = [r for r in names if r not in runs]
            if unknown:
                close = difflib.get_close_matches(unknown[0], runs, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"profiles.{pname}.{key} names unknown run(s) {unknown}{hint}; the runs are: {', '.join(runs)}")
        for run, overrides in p.train.per_run.items():
            where = f"profiles.{pname}.train.per_run.{run}"
            for key in set(overrides) & {"model", "shortcut", "dataset", "data_root", "verify", "seed"}:
                raise ConfigError(f"{where}.{key} cannot be overridden per run (model and shortcut come from `runs:`, the data from `data:`; a run's own seeds are `seeds: [...]`)")
            TrainConfig.from_dict({**p.train.config, **p.train.overrides(run)}, where)
    return Params(name, runs, profiles)


def repo_root(start: str | Path | None = None) -> Path:
    """The folder holding params.yaml and the sdnet package, searched upwards from ``start`` (the cwd)."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() and (folder / "sdnet").is_dir():
            return folder
    raise FileNotFoundError(f"no params.yaml above {here}: run from inside the sdnet repository")


def checkpoint_path(root: str | Path, path: str) -> Path:
    """A ``checkpoints`` entry as a path: ``~`` expanded, relative to the repository ``root``."""
    return Path(root) / Path(path).expanduser()


def load_params(path: str | Path, profile: str | None = None) -> Params:
    """Read and validate a params.yaml file (see :func:`parse_params`). The active profile's
    checkpoint files are checked where they are read (``sdnet.study.load_study``)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no {path}: run from inside the sdnet repository") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return parse_params(raw, profile, str(path))
