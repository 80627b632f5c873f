"""The chapters' parameters: every profile's ``csc_layer``, ``robustness``, ``adversarial`` and
``visualize`` sections of params.yaml, typed and validated.

    from sdnet.chapter_config import load_all
    params = load_all("params.yaml")             # the training side (sdnet.config) and these
    params.active.robustness.lambdas

Kept apart from :mod:`sdnet.config`, which holds what decides how a network is trained and is a
dependency of the training stage: a new chapter parameter changes this module, and so reruns
chapters, not training. :func:`sdnet.study.load_study` reads params.yaml through :func:`load_all`,
so every stage but training checks every section of every profile before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdnet.config import CHAPTER_SECTIONS, ConfigError, Params, Section, load_params, parse_params

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
    """Chapter 4: attacks against the test-time lambda."""

    lambdas: list[float]
    linf_eps: list[float]
    l2_eps: list[float]
    steps: int
    step_size_fraction: float
    test_images: int
    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    restarts: int = 1
    seed: int = 0
    # AutoAttack (standard) at L-inf 8/255: ResNet-18, and SDNet-18 at the training lambda and at
    # the lambda the worst case of `attacks` leaves most robust there (slow: off by default)
    autoattack: bool = False
    # The rival: ResNet-18 behind a test-time Gaussian blur of these sigmas (pixels; 5 taps),
    # attacked like SDNet-18's lambda (crafted on the bare ResNet-18, and through the blur)
    blur: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5])

    def check(self, where: str = "") -> None:
        self.need(bool(self.lambdas) and all(v >= 0 for v in self.lambdas), "lambdas", "a non-empty list of numbers >= 0", where)
        for key in ("linf_eps", "l2_eps"):
            self.need(all(0 <= e for e in getattr(self, key)), key, "a list of radii >= 0 (pixel values in [0, 1])", where)
        self.need(bool(self.linf_eps or self.l2_eps), "linf_eps", "at least one radius in linf_eps or l2_eps", where)
        self.need(self.steps >= 1, "steps", "an integer >= 1", where)
        self.need(0 < self.step_size_fraction <= 1, "step_size_fraction", "a number in (0, 1]", where)
        self.need(self.test_images >= 1, "test_images", "an integer >= 1", where)
        self.need(bool(self.attacks) and set(self.attacks) <= set(ATTACKS) and len(set(self.attacks)) == len(self.attacks),
                  "attacks", f"a non-empty list of distinct {list(ATTACKS)}", where)
        self.need(self.restarts >= 1, "restarts", "an integer >= 1", where)
        self.need(self.seed >= 0, "seed", "an integer >= 0", where)
        self.need(all(0 < s <= 3 for s in self.blur), "blur", "a list of sigmas in (0, 3] (pixels)", where)
        self.need(not self.autoattack or any(abs(e - 8 / 255) < 1e-6 for e in self.linf_eps), "autoattack",
                  "true only with the paper's 8/255 (0.0313725490) in linf_eps (the lambda it attacks is chosen there)", where)


@dataclass(frozen=True)
class VisualizeParams(Section):
    """Chapter 5: dictionaries and reconstructions."""

    images: int

    def check(self, where: str = "") -> None:
        self.need(self.images >= 1, "images", "an integer >= 1", where)


# The class of each chapter section, by its key in a profile.
SECTIONS: dict[str, type[Section]] = {"csc_layer": CscLayerParams, "robustness": NoiseParams, "adversarial": AttackParams, "visualize": VisualizeParams}
assert set(SECTIONS) == set(CHAPTER_SECTIONS)


def parse_chapters(params: Params) -> Params:
    """``params`` with every profile's chapter sections validated and typed."""
    profiles = {}
    for name, profile in params.profiles.items():
        parsed = {key: SECTIONS[key].from_dict(value, f"profiles.{name}.{key}") for key, value in profile.chapters.items()}
        profiles[name] = dataclasses.replace(profile, chapters=parsed)
    return dataclasses.replace(params, profiles=profiles)


def parse_all(raw: Any, profile: str | None = None, source: str = "params.yaml") -> Params:
    """Validate a whole params.yaml mapping: :func:`sdnet.config.parse_params`, then the chapters."""
    return parse_chapters(parse_params(raw, profile, source))


def load_all(path: str | Path, profile: str | None = None) -> Params:
    """Read and validate a whole params.yaml file (:func:`parse_all`)."""
    return parse_chapters(load_params(path, profile))
