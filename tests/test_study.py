"""The study object: a validated profile, and what the stages and notebooks ask of it."""

import json
import math

import pandas as pd
import pytest

from helpers import repository_params, write_repository
from sdnet.config import ConfigError
from sdnet.study import CHAPTERS, load_study



@pytest.fixture
def study(tmp_path):
    params = repository_params()
    params["profiles"]["quick"]["train"]["per_run"] = {"sdnet18_all_noshortcut": {"epochs": 2, "limit": 400, "seeds": [3]}}
    return load_study(root=write_repository(tmp_path, params))


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
    with pytest.raises(AttributeError, match="no attribute"):
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
    import matplotlib.pyplot as plt

    fig = plt.figure()
    assert study.save_figure(fig, "02_classification", "empty") is None  # a notebook cell ending with it prints no path
    assert study.figure_path("02_classification", "empty").is_file()
    plt.close(fig)
    with pytest.raises(ValueError, match="unknown chapter"):
        study.save_table(table, "06_extra", "x")
    assert len(CHAPTERS) == 5


def test_a_verdict_says_which_claims_moved_since_the_earlier_run(tmp_path):
    earlier = tmp_path / "reports" / "earlier" / "weak"
    (earlier / "03_noise_robustness").mkdir(parents=True)
    (earlier / "about.json").write_text(json.dumps({"label": "the weak networks", "commit": "f29dda3" + "0" * 33}))
    pd.DataFrame({"claim": ["more robust", "best lambda rises", "linear"], "paper": "p", "here": "h",
                  "verdict": ["not shown: +1.8 points", "holds for every noise", "holds: R^2 0.8"]}).to_csv(earlier / "03_noise_robustness" / "verdict.csv", index=False)
    params = repository_params()
    params["profiles"]["quick"]["earlier"] = "reports/earlier/weak"
    study = load_study(root=write_repository(tmp_path, params))
    rows = [{"claim": "more robust", "paper": "p", "here": "h", "verdict": "holds: +4.2 points"},
            {"claim": "best lambda rises", "paper": "p", "here": "h", "verdict": "holds for every noise"},
            {"claim": "a new claim", "paper": "p", "here": "h", "verdict": "holds"}]
    study.save_verdict("03_noise_robustness", rows)
    line = (study.reports / "tables" / "03_noise_robustness" / "verdict.md").read_text().strip().splitlines()[-1]
    assert line == ("**Against the weak networks, commit f29dda3:** the verdict moved for 1 of 3 claims: \u201cmore robust\u201d: "
                    "was \u201cnot shown\u201d, now \u201cholds\u201d. Unchanged: \u201cbest lambda rises\u201d (holds for every noise). "
                    "Not judged then: \u201ca new claim\u201d.")
    with pytest.raises(ConfigError, match="verdict.csv is missing"):  # a chapter the earlier run lacks
        study.save_verdict("04_adversarial", rows)
    params["profiles"]["quick"]["earlier"] = 3
    write_repository(tmp_path, params)
    with pytest.raises(ConfigError, match="earlier"):
        load_study(root=tmp_path)


def test_the_test_set_subset_is_class_balanced(study):
    test = study.test_set(100)
    assert len(test) == 100 and test.labels.bincount().tolist() == [10] * 10


def test_an_untrained_run_cannot_be_loaded(study):
    with pytest.raises(ConfigError, match="not trained at profile 'quick'"):
        study.load_model("resnet34")
