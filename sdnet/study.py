"""The study: params.yaml's active profile, validated, and what every stage and notebook asks of it.

    from sdnet.study import load_study
    study = load_study()                        # or load_study("cpu"); every section is validated
    model, ckpt = study.load_model("sdnet18")   # the checkpoint the `train@sdnet18` stage wrote
    test = study.test_set(1000)                 # a class-balanced subset of the chapters' test set
    study.save_table(df, "03_noise_robustness", "summary")      # CSV + Markdown
    study.save_figure(fig, "03_noise_robustness", "summary")    # PNG (study.figure_path says where)
    study.write_metrics("noise_robustness", {...})             # JSON, NaN written as null

Everything lives under ``reports/<profile>/``:

    models/<run>/<dataset>/seed<k>/   weights.pt, history.csv, training.json  (stage train@<run>;
                                      resume.pt while a network trains)
    train/<run>.json                  test accuracy and training record per dataset and seed
                                                                              (stage evaluate@<run>)
    curves/<run>.csv                  its training curves                     (stage train@<run>)
    results/<name>/                   what a computing stage produced         (sweep_noise, attack)
    tables/<chapter>/, figures/<chapter>/, notebooks/, metrics/, RESULTS.md   (the chapters)

The chapters run on the profile's first dataset and on the first seed's models unless they ask
for more (tables that compare networks use every seed). Loading a study imports no torch: a bad
parameter fails in a second, before anything heavy is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdnet.config import ConfigError, TrainConfig
from sdnet.params import (AttackParams, CheckpointParams, CscLayerParams, DataParams, NoiseParams, Params, TrainParams,
                          VisualizeParams, checkpoint_path, load_params, repo_root)
from sdnet.strict_json import write_json

if TYPE_CHECKING:
    import torch

CHAPTERS = ("01_csc_layer", "02_classification", "03_noise_robustness", "04_adversarial", "05_visualization")


def batches(images: torch.Tensor, labels: torch.Tensor, size: int = 500) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images [N, 3, H, W] as a list of (float images in [0, 1], labels) batches."""
    x = images.float() / 255
    return [(x[i : i + size], labels[i : i + size]) for i in range(0, len(x), size)]


@dataclass(frozen=True)
class Study:
    """The active profile of a validated params.yaml, rooted at the repository ``root``."""

    params: Params
    root: Path

    # -- the parameters ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.params.profile

    @property
    def profile(self):
        return self.params.active

    # The active profile's sections, by name: study.robustness.lambdas, study.train.seeds, ...
    @property
    def data(self) -> DataParams:
        return self.params.active.data

    @property
    def train(self) -> TrainParams:
        return self.params.active.train

    @property
    def checkpoints(self) -> CheckpointParams:
        return self.params.active.checkpoints

    @property
    def earlier(self) -> str | None:
        return self.params.active.earlier

    @property
    def csc_layer(self) -> CscLayerParams:
        return self.params.active.csc_layer

    @property
    def robustness(self) -> NoiseParams:
        return self.params.active.robustness

    @property
    def adversarial(self) -> AttackParams:
        return self.params.active.adversarial

    @property
    def visualize(self) -> VisualizeParams:
        return self.params.active.visualize

    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.name

    @property
    def data_root(self) -> Path:
        return self.root / self.params.active.data.root  # an absolute root stays as it is

    @property
    def dataset(self) -> str:
        """The dataset the chapters use: the profile's first."""
        return self.params.active.data.datasets[0]

    def trained(self, run: str) -> bool:
        """Whether the active profile trains ``run`` (its ``train.runs``)."""
        self._check_run(run)
        return run in self.params.active.train.runs

    def given_file(self, run: str) -> Path | None:
        """The checkpoint file the active profile gives for ``run`` (``checkpoints``), or None."""
        self._check_run(run)
        path = self.params.active.checkpoints.given().get(run)
        return None if path is None else checkpoint_path(self.root, path)

    def available(self, run: str) -> bool:
        """Whether ``run`` can be loaded at the active profile: trained, or given as a file."""
        return self.trained(run) or self.given_file(run) is not None

    def _check_run(self, run: str) -> None:
        if run not in self.params.runs:
            raise ConfigError(f"unknown run {run!r}; params.yaml `runs:` has {', '.join(self.params.runs)}")

    def train_config(self, run: str, dataset: str | None = None, seed: int | None = None) -> TrainConfig:
        """The TrainConfig of ``run`` on ``dataset`` with ``seed`` (:meth:`sdnet.params.Params.train_config`)."""
        return self.params.train_config(run, self.root, dataset, seed)

    # -- models ---------------------------------------------------------------------------------
    def model_dir(self, run: str, dataset: str | None = None, seed: int | None = None) -> Path:
        """The folder ``train@<run>`` trains ``run`` in (:meth:`sdnet.params.Params.run_dir`)."""
        return self.params.run_dir(run, self.root, dataset, seed)

    def checkpoint(self, run: str, dataset: str | None = None, seed: int | None = None) -> Path:
        """The finished network of ``run`` (its ``weights.pt``)."""
        return self.model_dir(run, dataset, seed) / "weights.pt"

    def load_model(self, run: str, dataset: str | None = None, seed: int | None = None, device: str | torch.device | None = None):
        """``(model, checkpoint)`` of a trained run, in eval mode on ``device`` (default: CUDA when
        available). Refuses a run the profile neither trains nor is given (``checkpoints``), and a
        checkpoint whose training did not finish. A run given as a file is that file's network
        (:meth:`load_file`), whatever ``dataset`` and ``seed``."""
        from sdnet.checkpoint import load_model, require_finished
        from sdnet.device import resolve_device

        if self.given_file(run) is not None:
            return self.load_file(run, device)
        if not self.trained(run):
            raise ConfigError(f"run {run!r} is not trained at profile {self.name!r}: add it to profiles.{self.name}.train.runs")
        import torch

        model, ckpt = load_model(self.checkpoint(run, dataset, seed), resolve_device(device or "auto"))
        model = model.to(memory_format=torch.channels_last)  # as trained and evaluated (faster on CPUs and GPUs)
        require_finished(ckpt, self.checkpoint(run, dataset, seed), "finish it with `dvc repro`")
        return model, ckpt

    def load_models(self, run: str, device: str | torch.device | None = None) -> list[tuple[str, Any]]:
        """Every network of ``run`` at the active profile as ``(label, model)``: one per seed it
        trains (``"seed 0"``, ...) on its first dataset, or the one file it gives (``"given"``)."""
        if self.given_file(run) is not None:
            return [("given", self.load_file(run, device)[0])]
        return [(f"seed {s}", self.load_model(run, seed=s, device=device)[0]) for s in self.train.seeds_for(run)]

    def load_file(self, run: str, device: str | torch.device | None = None):
        """``(model, checkpoint)`` of the file the profile gives for ``run``: a checkpoint this
        project wrote (a finished training run), or one of the authors' released files
        (:func:`sdnet.released.load_released`, their lambda 0.1 and 2 steps). The second item is
        this project's checkpoint dict, or ``{"released": path, "arch": ..., "config": {"lam", "n_steps"}}``."""
        import torch

        from sdnet.checkpoint import CheckpointError, load_model, require_finished
        from sdnet.device import resolve_device
        from sdnet.released import AUTHORS_LAM, AUTHORS_STEPS, load_released

        path, device = self.given_file(run), resolve_device(device or "auto")
        if path is None:
            raise ConfigError(f"run {run!r} is not given as a file at profile {self.name!r} (profiles.{self.name}.checkpoints.{run})")
        if self.is_ours(path):
            model, ckpt = load_model(path, device)
            require_finished(ckpt, path, "give a finished run")
            got = (ckpt["arch"]["model"], ckpt["arch"]["shortcut"], ckpt["arch"]["stem"], ckpt["arch"]["num_classes"])
        else:
            model = load_released(path, device)
            ckpt = {"released": str(path), "arch": model.released.describe(), "config": {"lam": AUTHORS_LAM, "n_steps": AUTHORS_STEPS}}
            arch = model.released
            got = (arch.model, arch.shortcut, arch.stem, arch.num_classes)
        spec, classes = self.params.runs[run], 100 if self.dataset == "cifar100" else 10  # the chapters' data: 32x32 images
        name = lambda model, shortcut, stem, classes: (  # noqa: E731
            f"{model}{'' if shortcut else ' without shortcuts'} with the {stem} stem and {classes} classes")
        if got != (spec.model, spec.shortcut, "cifar", classes):
            raise CheckpointError(f"profiles.{self.name}.checkpoints.{run} = {str(path)!r} holds {name(*got)}, "
                                  f"not the run {run!r} on {self.dataset} ({name(spec.model, spec.shortcut, 'cifar', classes)})")
        return model.to(memory_format=torch.channels_last), ckpt

    @staticmethod
    def is_ours(path: Path) -> bool:
        """Whether ``path`` is a checkpoint this project wrote (a dict with its ``format``)."""
        import torch

        try:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # not a zip-format file, or unreadable: the released loader says what it is
            return False
        return isinstance(raw, dict) and "format" in raw and "arch" in raw

    def train_lam(self, run: str, dataset: str | None = None, seed: int | None = None) -> float:
        """The lambda ``run`` was trained with, read from its checkpoint (the authors' files: 0.1)."""
        from sdnet.checkpoint import load

        given = self.given_file(run)
        if given is not None and not self.is_ours(given):
            from sdnet.released import AUTHORS_LAM

            return AUTHORS_LAM
        return float(load(given or self.checkpoint(run, dataset, seed))["config"]["lam"])

    # -- data -----------------------------------------------------------------------------------
    def datasets(self, dataset: str | None = None):
        """``(train, test)`` ImageSets of ``dataset`` (default: the chapters') as the profile reads
        them (root, verification, class-balanced ``limit``)."""
        from sdnet.data import load_dataset

        data = self.params.active.data
        return load_dataset(dataset or self.dataset, self.data_root, verify=data.verify, limit=data.limit)

    def test_set(self, images: int | None = None, dataset: str | None = None):
        """The test split, or a class-balanced subset of ``images`` of it."""
        test = self.datasets(dataset)[1]
        return test if images is None or images >= len(test) else test.balanced(images)

    def noise_conditions(self, images: int) -> tuple[dict[tuple[str, int], tuple], str]:
        """Images and labels of the clean test subset and of every (noise, severity) of the profile,
        and where the noise came from: the released CIFAR-10-C files (CIFAR-10, when
        ``<data>/CIFAR-10-C`` exists) or our seeded generator with the release's severity constants.
        Every condition holds the same images, in the same order."""
        from sdnet.data.corruptions import corrupt_severity, load_cifar10c

        R = self.robustness
        test = self.datasets()[1]
        chosen = test.balanced_indices(min(images, len(test)))
        clean = test.subset(chosen)
        released = self.dataset == "cifar10" and (self.data_root / "CIFAR-10-C").is_dir()
        conditions = {("clean", 0): (clean.images, clean.labels)}
        for noise in R.noises:
            if released:
                for severity, part in load_cifar10c(self.data_root, noise, R.severities):
                    part = part.subset(chosen)
                    conditions[(noise, severity)] = (part.images, part.labels)
            else:
                for severity in R.severities:
                    conditions[(noise, severity)] = (corrupt_severity(clean.images, noise, severity, seed=R.seed + severity), clean.labels)
        source = "released CIFAR-10-C" if released else "generated (CIFAR-10-C severities)"
        return conditions, source

    # -- outputs --------------------------------------------------------------------------------
    def _folder(self, kind: str, chapter: str) -> Path:
        if chapter not in CHAPTERS:
            raise ValueError(f"unknown chapter {chapter!r}; the chapters are {CHAPTERS}")
        folder = self.reports / kind / chapter
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def save_table(self, table, chapter: str, name: str, title: str | None = None, footer: str | None = None):
        """Write a pandas table as ``tables/<chapter>/<name>.csv`` and ``.md`` (Markdown with an
        optional bold ``title`` line above and ``footer`` line below, as RESULTS.md shows it; NaN
        as an empty cell); returns the table."""
        folder = self._folder("tables", chapter)
        table.to_csv(folder / f"{name}.csv", index=False)
        markdown = table.astype(object).where(table.notna(), None).to_markdown(index=False, missingval="")
        text = (f"**{title}**\n\n" if title else "") + markdown + "\n" + (f"\n{footer}\n" if footer else "")
        (folder / f"{name}.md").write_text(text)
        return table

    def save_verdict(self, chapter: str, rows: list[dict[str, str]]):
        """The chapter's verdict: one row per claim of the paper, with columns ``claim``,
        ``paper``, ``here`` and ``verdict`` (one sentence: does it hold here?). Saved as
        ``tables/<chapter>/verdict`` (RESULTS.md opens the chapter with it); returns the table."""
        import pandas as pd

        table = pd.DataFrame(rows, columns=["claim", "paper", "here", "verdict"])
        # one line under the table, against the profile's earlier run: did the verdicts move?
        line = self.compared_with_earlier(chapter, table) if self.profile.earlier is not None else None
        self.save_table(table, chapter, "verdict", footer=line)
        if line:
            _show_markdown(line)
        return table

    def compared_with_earlier(self, chapter: str, verdicts) -> str:
        """One line: which of ``verdicts`` (a chapter's claims) moved since the profile's
        ``earlier`` run of the study (its ``<chapter>/verdict.csv`` and ``about.json``)."""
        import json

        import pandas as pd

        folder = self.root / self.profile.earlier
        try:
            about = json.loads((folder / "about.json").read_text())
            earlier = pd.read_csv(folder / chapter / "verdict.csv")
        except FileNotFoundError as error:
            raise ConfigError(f"profiles.{self.name}.earlier = {self.profile.earlier!r}: {error.filename} is missing "
                              "(a folder of reports/earlier/ with about.json and <chapter>/verdict.csv)") from None
        from sdnet.chapters.verdicts import verdicts_moved

        return verdicts_moved(earlier, verdicts, f"{about['label']}, commit {about['commit'][:7]}")

    def save_figure(self, fig, chapter: str, name: str, dpi: int = 120) -> None:
        """Save a matplotlib figure as ``figures/<chapter>/<name>.png`` (:meth:`figure_path`).
        Returns nothing, so that a notebook cell ending with it shows the figure and no path of
        this machine."""
        fig.savefig(self.figure_path(chapter, name), dpi=dpi, bbox_inches="tight")

    def figure_path(self, chapter: str, name: str) -> Path:
        """Where :meth:`save_figure` writes the figure ``name`` of ``chapter``."""
        return self._folder("figures", chapter) / f"{name}.png"

    def write_metrics(self, name: str, values: dict[str, Any]) -> Path:
        """``metrics/<name>.json`` (strict JSON: NaN becomes null)."""
        return write_json(self.reports / "metrics" / f"{name}.json", values)

    def results(self, name: str) -> Path:
        """``results/<name>/``: the folder a computing stage writes and a chapter reads."""
        return self.reports / "results" / name


def _show_markdown(text: str) -> None:
    """``text`` shown as Markdown in a notebook (with itself, not an object's repr, as the plain-text
    form a text-only reader shows), printed elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({"text/markdown": text, "text/plain": text}, raw=True)
    else:
        print(text)


def check_checkpoints(params: Params, root: str | Path) -> None:
    """The active profile's checkpoint files exist (paths relative to ``root``, the repository),
    and SDNet-18, which chapters 3-5 need, is trained or given. The message says where the
    authors publish their networks and where to put them. Inactive profiles are not checked:
    their files need not be on this machine."""
    from sdnet.released import released_help

    profile, name = params.active, params.profile
    dataset = profile.data.datasets[0].removesuffix("-jpeg")  # the JPEG copy is CIFAR-10
    for run, path in profile.checkpoints.given().items():
        if not checkpoint_path(root, path).is_file():
            raise ConfigError(f"profiles.{name}.checkpoints.{run} = {path!r}: no such file. {released_help(dataset, run)}")
    if "sdnet18" not in profile.train.runs and profile.checkpoints.sdnet18 is None:
        raise ConfigError(
            f"profile {name!r} has no SDNet-18: it neither trains it (train.runs) nor is given a checkpoint file "
            f"(profiles.{name}.checkpoints.sdnet18 is null). {released_help(dataset, 'sdnet18')} For example: "
            f"dvc exp run -S profile={name} -S profiles.{name}.checkpoints.sdnet18=data/released/{dataset}/sdnet18/model_best.pth.tar")


def load_study(profile: str | None = None, root: str | Path | None = None) -> Study:
    """The study of the repository at ``root`` (found upwards from the cwd), at ``profile``
    (default: params.yaml's ``profile``). Every section of every profile is validated first, then
    the active profile's checkpoint files (:func:`check_checkpoints`)."""
    root = repo_root(root)
    params = load_params(root / "params.yaml", profile)
    check_checkpoints(params, root)
    return Study(params, root)
