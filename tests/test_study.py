"""The study object: a validated profile, and what the stages and notebooks ask of it."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sdnet.config import ConfigError
from sdnet.study import CHAPTERS, load_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(tmp_path):
    (tmp_path / "sdnet").symlink_to(ROOT / "sdnet")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profiles"]["quick"]["train"]["per_run"] = {"sdnet18_all_noshortcut": {"epochs": 2, "limit": 400, "seeds": [3]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return load_study(root=tmp_path)


def test_a_runs_config_is_the_profile_then_its_overrides_then_its_architecture(study):
    cfg = study.train_config("sdnet18_all_noshortcut")
    assert (cfg.model, cfg.shortcut, cfg.epochs, cfg.limit, cfg.seed, cfg.width) == ("sdnet18_all", False, 2, 400, 3, 16)
    assert cfg.data_root == str(study.root / "data") and cfg.dataset == study.dataset
    plain = study.train_config("resnet18", seed=1)
    assert (plain.model, plain.epochs, plain.seed) == ("resnet18", 5, 1)
    assert study.model_dir("sdnet18_all_noshortcut") == study.reports / "models" / "sdnet18_all_noshortcut" / "synthetic" / "seed3"
    with pytest.raises(ConfigError, match="unknown run 'sdnet19'"):
        study.train_config("sdnet19")


def test_sections_and_paths(study):
    assert study.name == "quick" and study.reports == study.root / "reports" / "quick"
    assert study.robustness.noises == ["gaussian", "shot", "impulse", "speckle"]
    assert study.trained("sdnet18") and not study.trained("resnet34")
    with pytest.raises(AttributeError, match="no attribute or profile section"):
        study.robustnes


def test_tables_verdicts_and_metrics(study):
    table = pd.DataFrame({"model": ["a", "b"], "top1": [90.5, math.nan]})
    study.save_table(table, "02_classification", "example", "An example")
    folder = study.reports / "tables" / "02_classification"
    markdown = (folder / "example.md").read_text()
    assert markdown.startswith("**An example**") and "nan" not in markdown
    assert pd.read_csv(folder / "example.csv").shape == (2, 2)
    study.save_verdict("02_classification", [{"claim": "c", "paper": "p", "here": "h", "verdict": "holds"}])
    assert "| c " in (folder / "verdict.md").read_text()
    study.write_metrics("example", {"x": math.nan, "y": [1.0, math.inf]})
    assert json.loads((study.reports / "metrics" / "example.json").read_text()) == {"x": None, "y": [1.0, None]}
    with pytest.raises(ValueError, match="unknown chapter"):
        study.save_table(table, "06_extra", "x")
    assert len(CHAPTERS) == 5


def test_the_test_set_subset_is_class_balanced(study):
    test = study.test_set(100)
    assert len(test) == 100 and test.labels.bincount().tolist() == [10] * 10


def test_an_untrained_run_cannot_be_loaded(study):
    with pytest.raises(ConfigError, match="not trained at profile 'quick'"):
        study.load_model("resnet34")
