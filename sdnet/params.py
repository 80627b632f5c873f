"""The study's parameters: params.yaml, every section of every profile, typed and validated.

    from sdnet.params import load_params
    params = load_params("params.yaml")          # or load_params("params.yaml", "cpu")
    params.active.robustness.lambdas             # the active profile's chapter 3 section
    params.train_config("sdnet18", root)         # what train@sdnet18 trains (a sdnet.config.TrainConfig)

A bad value fails here, before any work, with a message naming the key (its full path in
params.yaml) and what is allowed; the typed-section machinery is :class:`sdnet.config.Section`.

No code that decides a network's weights imports this module (:func:`sdnet.provenance.weights_code`):
the stages read a profile here and hand the trainer a TrainConfig, so a new key or profile
reruns a ``train@<run>`` stage in seconds (its networks are already trained by today's code)
and never retrains one.
"""

from __future__ import annotations

import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sdnet.config import ARCHS, DATASETS, ConfigError, Section, TrainConfig, join_key

# ---------------------------------------------------------------------------------------------
# How a profile trains its networks
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
            raise ConfigError(f"{join_key(where, 'seed')}: a profile lists its seeds as `seeds: [0, 1, 2]`")
        fixed = {"model", "dataset", "shortcut", "data_root", "verify", "limit"}  # from runs: and data:
        for key in values:
            if key in fixed:
                raise ConfigError(f"{join_key(where, key)} cannot be set here: it comes from `runs:` or the profile's `data:` section")
        config = {k: v for k, v in values.items() if k not in own}
        TrainConfig.from_dict(config, where)  # every TrainConfig key and value, checked once here
        section = super().from_dict({**{k: v for k, v in values.items() if k in own}, "config": config}, where)
        for seeds, key in [(section.seeds, "seeds")] + [(o["seeds"], f"per_run.{r}.seeds") for r, o in section.per_run.items() if "seeds" in o]:
            if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
                    and len(set(seeds)) == len(seeds)):
                raise ConfigError(f"{join_key(where, key)} = {seeds!r} is not allowed: a non-empty list of distinct integers >= 0")
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


# ---------------------------------------------------------------------------------------------
# The chapters' sections
# ---------------------------------------------------------------------------------------------

NOISES = ("gaussian", "shot", "impulse", "speckle")  # CIFAR-10-C's additive noises
ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "autoattack")  # see sdnet.attacks


@dataclass(frozen=True)
class CscLayerParams(Section):
    """Chapter 1: the layer on its own."""

    max_steps: int
    lambdas: list[float]
    images: int
    curve_lambdas: list[float]
    random_dictionaries: int

    def check(self, where: str = "") -> None:
        self.need(self.max_steps >= 2, "max_steps", "an integer >= 2", where)
        self.need(bool(self.lambdas) and all(v >= 0 for v in self.lambdas), "lambdas", "a non-empty list of numbers >= 0", where)
        self.need(self.images >= 2, "images", "an integer >= 2", where)
        self.need(len(self.curve_lambdas) >= 2 and all(v >= 0 for v in self.curve_lambdas) and self.curve_lambdas == sorted(set(self.curve_lambdas)),
                  "curve_lambdas", "at least two distinct numbers >= 0, increasing", where)
        self.need(self.random_dictionaries >= 2, "random_dictionaries", "an integer >= 2", where)


@dataclass(frozen=True)
class NoiseParams(Section):
    """Chapter 3: test-time lambda under CIFAR-10-C noise."""

    noises: list[str]
    severities: list[int]
    lambdas: list[float]
    test_images: int
    seed: int = 0
    # The rival defence, tuned like lambda: ResNet-18 behind a test-time Gaussian blur of these
    # sigmas (pixels; 5 taps) and behind these numbers of 3x3 median passes (sdnet.denoise)
    blur: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5])
    median: list[int] = field(default_factory=lambda: [1, 2, 3])

    def check(self, where: str = "") -> None:
        self.need(bool(self.noises) and set(self.noises) <= set(NOISES), "noises", f"a non-empty list of {list(NOISES)}", where)
        self.need(all(0 < s <= 3 for s in self.blur), "blur", "a list of sigmas in (0, 3] (pixels)", where)
        self.need(all(isinstance(k, int) and 1 <= k <= 5 for k in self.median), "median", "a list of integers 1..5 (3x3 median passes)", where)
        self.need(bool(self.severities) and all(1 <= s <= 5 for s in self.severities), "severities", "a non-empty list of 1..5", where)
        self.need(len(self.lambdas) >= 2 and all(v >= 0 for v in self.lambdas), "lambdas", "a list of at least 2 numbers >= 0", where)
        self.need(self.test_images >= 1, "test_images", "an integer >= 1", where)
        self.need(self.seed >= 0, "seed", "an integer >= 0", where)


@dataclass(frozen=True)
class AttackParams(Section):
    """Chapter 4: attacks against the test-time lambda and the rival's blur, over every seed."""

    lambdas: list[float]
    linf_eps: list[float]
    l2_eps: list[float]
    steps: int
    step_size_fraction: float
    test_images: int
    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    restarts: int = 1
    seed: int = 0
    # The rival: ResNet-18 behind a test-time Gaussian blur of these sigmas (pixels; 5 taps),
    # attacked like SDNet-18's lambda (crafted on the bare ResNet-18, and through the blur)
    blur: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5])
    # The checks a gradient-masking defence would fail, on the first seed's networks and the first
    # `check_images` images (half from each half of the subset): at radii where white-box accuracy
    # is well above zero, PGD with `check_steps` steps and `check_restarts` random restarts against
    # the profile's PGD; white-box PGD over `sweep_linf_eps` (accuracy must fall to zero)
    check_linf_eps: list[float] = field(default_factory=lambda: [1 / 255])
    check_l2_eps: list[float] = field(default_factory=lambda: [0.25])
    check_steps: int = 30
    check_restarts: int = 2
    check_images: int = 500
    sweep_linf_eps: list[float] = field(default_factory=lambda: [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255])
    # AutoAttack (standard) at the smallest L-inf radius of `linf_eps`, on the check images of the
    # subset's second half: ResNet-18, and each defence at its training setting and at the setting
    # the worst case of `attacks` leaves most robust on the first half (slow: off by default)
    autoattack: bool = False

    def check(self, where: str = "") -> None:
        self.need(bool(self.lambdas) and all(v >= 0 for v in self.lambdas), "lambdas", "a non-empty list of numbers >= 0", where)
        for key in ("linf_eps", "l2_eps", "check_linf_eps", "check_l2_eps", "sweep_linf_eps"):
            self.need(all(0 <= e for e in getattr(self, key)), key, "a list of radii >= 0 (pixel values in [0, 1])", where)
        self.need(bool(self.linf_eps or self.l2_eps), "linf_eps", "at least one radius in linf_eps or l2_eps", where)
        for key in ("steps", "check_steps", "check_restarts", "check_images", "test_images", "restarts"):
            self.need(getattr(self, key) >= 1, key, "an integer >= 1", where)
        self.need(0 < self.step_size_fraction <= 1, "step_size_fraction", "a number in (0, 1]", where)
        self.need(bool(self.attacks) and set(self.attacks) <= set(ATTACKS) and len(set(self.attacks)) == len(self.attacks),
                  "attacks", f"a non-empty list of distinct {list(ATTACKS)}", where)
        self.need(self.seed >= 0, "seed", "an integer >= 0", where)
        self.need(all(0 < s <= 3 for s in self.blur), "blur", "a list of sigmas in (0, 3] (pixels)", where)
        self.need(not self.autoattack or bool(self.linf_eps), "autoattack", "true only with an L-inf radius in linf_eps (it runs at the smallest)", where)


@dataclass(frozen=True)
class VisualizeParams(Section):
    """Chapter 5: dictionaries and reconstructions."""

    images: int

    def check(self, where: str = "") -> None:
        self.need(self.images >= 1, "images", "an integer >= 1", where)


# ---------------------------------------------------------------------------------------------
# A profile, params.yaml, and where the repository is
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile(Section):
    """One scale of the study (params.yaml ``profiles.<name>``): how its networks are trained
    (``data``, ``train``, ``checkpoints``), a frozen ``earlier`` run to compare verdicts with, and
    each chapter's section."""

    data: DataParams
    train: TrainParams
    csc_layer: CscLayerParams
    robustness: NoiseParams
    adversarial: AttackParams
    visualize: VisualizeParams
    checkpoints: CheckpointParams = field(default_factory=CheckpointParams)
    # A frozen earlier run of this study (a folder of reports/earlier/: its chapters' verdict.csv
    # and about.json), or null: each chapter's verdict then says which verdicts moved since.
    earlier: str | None = None

    @classmethod
    def from_dict(cls, values: Any, where: str = "") -> Profile:
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be a mapping of sections, got {values!r}")
        hints = typing.get_type_hints(cls)
        sections: dict[str, Any] = {}
        for key, value in values.items():
            if key == "earlier":
                if value is not None and not (isinstance(value, str) and value.strip()):
                    raise ConfigError(f"{join_key(where, key)} = {value!r} is not allowed: a folder of reports/earlier/, or null")
                sections[key] = value
            elif key in hints:
                sections[key] = hints[key].from_dict(value, join_key(where, key))
            else:
                close = difflib.get_close_matches(str(key), hints, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown section {join_key(where, key)!r}{hint}; a profile has: {', '.join(hints)}")
        missing = [k for k in hints if k not in sections and k not in ("checkpoints", "earlier")]
        if missing:
            raise ConfigError(f"{where} is missing the section(s) {', '.join(missing)}")
        profile = cls(**sections)
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
    """Validate a params.yaml mapping: the runs, and every section of every profile. ``profile``
    overrides the file's choice. Every profile is checked (a typo in an inactive one is caught
    too), and every run a profile names must exist."""
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
