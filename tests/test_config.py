"""params.yaml validation: every section, every kind of mistake, before any work."""

import copy
import subprocess
import sys
import time

import pytest
import yaml

from helpers import ROOT
from sdnet.params import parse_params
from sdnet.config import ConfigError, TrainConfig

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def edited(path: str, value, delete: bool = False) -> dict:
    """params.yaml with the dotted key ``path`` set to ``value`` (or deleted)."""
    raw = copy.deepcopy(PARAMS)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return raw


def test_the_repository_params_are_valid():
    params = parse_params(PARAMS)
    assert params.profile == PARAMS["profile"] and set(params.profiles) == set(PARAMS["profiles"])
    assert params.runs["sdnet18_all_noshortcut"].shortcut is False


@pytest.mark.parametrize("path,value,message", [
    ("profiles.quick.robustness.lambdas", "oops", "profiles.quick.robustness.lambdas = 'oops' is not allowed: expected a list of numbers"),
    ("profiles.quick.robustness.noises", ["gaussian", "fog"], "profiles.quick.robustness.noises"),
    ("profiles.quick.robustness.severities", [0, 3], "severities"),
    ("profiles.quick.robustness.test_images", 0, "test_images"),
    ("profiles.quick.adversarial.attacks", ["pgd", "cw"], "profiles.quick.adversarial.attacks"),
    ("profiles.quick.adversarial.steps", 2.5, "profiles.quick.adversarial.steps = 2.5 is not allowed: expected an integer"),
    ("profiles.quick.adversarial.step_size_fraction", 0, "step_size_fraction"),
    ("profiles.quick.csc_layer.images", "many", "profiles.quick.csc_layer.images"),
    ("profiles.quick.visualize.images", -1, "profiles.quick.visualize.images"),
    ("profiles.quick.data.datasets", ["mnist"], "profiles.quick.data.datasets"),
    ("profiles.quick.data.limit", 0, "profiles.quick.data.limit"),
    ("profiles.quick.data.verify", "yes", "profiles.quick.data.verify = 'yes' is not allowed: expected true or false"),
    ("profiles.quick.train.lr", True, "profiles.quick.train.lr = True is not allowed: expected a number"),
    ("profiles.quick.train.nesterov", "maybe", "profiles.quick.train.nesterov = 'maybe' is not allowed: expected true or false"),
    ("profiles.quick.train.epochs", 0, "profiles.quick.train.epochs = 0 is not allowed"),
    ("profiles.quick.train.seeds", [0, 0], "profiles.quick.train.seeds"),
    ("profiles.quick.train.runs", ["resnet18", "sdnet_18"], "unknown run(s) ['sdnet_18'] (did you mean 'sdnet18'?)"),
    ("profiles.quick.train.per_run", {"sdnet18": {"epochs": "five"}}, "profiles.quick.train.per_run.sdnet18.epochs"),
    ("profiles.quick.train.per_run", {"sdnet18": {"model": "resnet18"}}, "cannot be overridden per run"),
    ("profiles.quick.train.seed", 3, "seeds: [0, 1, 2]"),
    ("profiles.quick.train.limit", 100, "comes from `runs:` or the profile's `data:`"),
    ("runs.sdnet18.model", "sdnet50", "runs.sdnet18.model = 'sdnet50'"),
    ("runs.resnet18.shortcut", False, "runs.resnet18.shortcut"),
    ("profile", "papr", "profile 'papr' is not in"),
    ("profiles.paper.robustness.lambdas", [0.1], "profiles.paper.robustness.lambdas"),  # an inactive profile too
])
def test_a_bad_value_names_its_key_and_what_is_allowed(path, value, message):
    with pytest.raises(ConfigError) as error:
        parse_params(edited(path, value))
    assert message in str(error.value)


@pytest.mark.parametrize("path,value,hint", [
    ("profiles.quick.robustness.lambda", [0.1], "did you mean 'lambdas'"),
    ("profiles.quick.data.limt", 100, "did you mean 'limit'"),
    ("profiles.quick.train.verfy", True, "did you mean 'verify'"),
    ("profiles.quick.robustnes", {}, "did you mean 'robustness'"),
    ("profile_name", "quick", "unknown top-level key"),
])
def test_an_unknown_key_is_refused_with_a_suggestion(path, value, hint):
    with pytest.raises(ConfigError, match=hint):
        parse_params(edited(path, value))


def test_a_missing_key_is_named():
    with pytest.raises(ConfigError, match="profiles.quick.robustness is missing 'profiles.quick.robustness.lambdas'"):
        parse_params(edited("profiles.quick.robustness.lambdas", None, delete=True))
    with pytest.raises(ConfigError, match="missing the section"):
        parse_params(edited("profiles.quick.visualize", None, delete=True))


def test_numbers_in_scientific_notation_are_numbers():
    # YAML 1.1 reads 5e-4 as a string; the command line's values are read as YAML too
    params = parse_params(edited("profiles.quick.train.weight_decay", "5e-4"))
    assert params.active.train.config["weight_decay"] == "5e-4"  # as written; the TrainConfig is a float
    cfg = TrainConfig.from_dict({"lr": "1e-3", "weight_decay": "5e-4", "eta_min": "1e-6"})
    assert (cfg.lr, cfg.weight_decay, cfg.eta_min) == (1e-3, 5e-4, 1e-6)
    assert parse_params(edited("profiles.quick.robustness.lambdas", ["1e-1", 0.5])).active.robustness.lambdas == [0.1, 0.5]
    with pytest.raises(ConfigError, match="lr = 'fast'"):
        TrainConfig.from_dict({"lr": "fast"})


def test_a_typo_in_params_stops_a_stage_in_seconds(tmp_path):
    """What `dvc exp run -S profiles.quick.robustness.lambdas=oops` runs: the stage fails at once, naming the key."""
    (tmp_path / "sdnet").symlink_to(ROOT / "sdnet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited("profiles.quick.robustness.lambdas", "oops")))
    tic = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "sdnet.stages.noise"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - tic < 10
    assert result.returncode != 0 and "profiles.quick.robustness.lambdas = 'oops'" in result.stderr


def test_a_run_can_have_its_own_seeds_and_budget():
    raw = edited("profiles.quick.train.per_run", {"sdnet18_all_noshortcut": {"epochs": 2, "seeds": [0]}})
    raw["profiles"]["quick"]["train"]["seeds"] = [0, 1, 2]
    train = parse_params(raw).active.train
    assert train.seeds_for("sdnet18") == [0, 1, 2] and train.seeds_for("sdnet18_all_noshortcut") == [0]
    assert train.overrides("sdnet18_all_noshortcut") == {"epochs": 2}
    with pytest.raises(ConfigError, match="per_run.sdnet18.seeds = \\[1, 1\\]"):
        parse_params(edited("profiles.quick.train.per_run", {"sdnet18": {"seeds": [1, 1]}}))
