"""The `released` profile: the study on the authors' own networks, given as checkpoint files.

The files are synthetic checkpoints in the authors' layout (tests/test_released.py builds them
from tests/fixtures/released_keys.json), narrow (width 8) so that a whole run takes seconds: the
checkpoints section of params.yaml, the study loading the files, and the profile end to end
(computing stages with the runner, then the chapters with DVC) with SDNet-18 alone.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sdnet.config import ConfigError
from sdnet.params import parse_params
from sdnet.released import RELEASED_LINKS
from sdnet.study import load_study
from helpers import MINI, ROOT, repository_params, skip_local_state, write_repository
from test_pipeline import dvc_finishes
from test_released import save, synthetic_state

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def repository(folder: Path, profile: str = "released", **checkpoints) -> Path:
    """A repository at ``folder`` (params.yaml and a link to the package) whose active profile is
    ``profile``, with ``checkpoints`` set in the released profile."""
    params = repository_params()
    params["profile"] = profile
    params["profiles"]["released"]["checkpoints"].update(checkpoints)
    return write_repository(folder, params)


def released_file(path: Path, name: str = "cifar10/sdnet18", width: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(path, synthetic_state(name, width=width), "best")


# ---------------------------------------------------------------------------------------------
# params.yaml: the checkpoints section
# ---------------------------------------------------------------------------------------------


def test_without_sdnet18_the_released_profile_says_where_the_authors_publish_it(tmp_path):
    root = repository(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_study(root=root)
    message = str(error.value)
    assert "profiles.released.checkpoints.sdnet18 is null" in message
    assert RELEASED_LINKS[("cifar10", "sdnet18")] in message and "data/released/cifar10/sdnet18/model_best.pth.tar" in message
    assert "dvc exp run -S profile=released -S profiles.released.checkpoints.sdnet18=" in message


def test_a_missing_file_names_the_key_and_where_to_get_it(tmp_path):
    root = repository(tmp_path, sdnet18="data/released/cifar10/sdnet18/model_best.pth.tar", resnet18="nowhere/resnet18.pt")
    released_file(root / "data/released/cifar10/sdnet18/model_best.pth.tar")
    with pytest.raises(ConfigError) as error:
        load_study(root=root)
    message = str(error.value)
    assert message.startswith("profiles.released.checkpoints.resnet18 = 'nowhere/resnet18.pt': no such file.")
    assert "Pre-trained Models" in message or "pre-trained-models" in message


def test_null_optional_runs_are_fine_and_paths_are_relative_to_the_repository(tmp_path):
    root = repository(tmp_path, sdnet18="data/released/cifar10/sdnet18/model_best.pth.tar")
    released_file(root / "data/released/cifar10/sdnet18/model_best.pth.tar")
    study = load_study(root=root)
    assert study.params.active.checkpoints.given() == {"sdnet18": "data/released/cifar10/sdnet18/model_best.pth.tar"}
    assert study.available("sdnet18") and not study.trained("sdnet18")
    assert not study.available("resnet18") and not study.available("sdnet18_all_noshortcut")


def test_only_the_active_profile_needs_its_files(tmp_path):
    root = repository(tmp_path, profile="quick", sdnet18="not/here.pth.tar")
    assert load_study(root=root).name == "quick"


@pytest.mark.parametrize("value,message", [
    (5, "profiles.released.checkpoints.sdnet18 = 5 is not allowed: expected a string or null"),
    (["a.pth"], "profiles.released.checkpoints.sdnet18 = ['a.pth'] is not allowed"),
    ("  ", "a path to a checkpoint file, or null"),
])
def test_a_path_of_the_wrong_type_is_refused(value, message):
    raw = json.loads(json.dumps(PARAMS))
    raw["profiles"]["released"]["checkpoints"]["sdnet18"] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_params(raw)


def test_an_unknown_run_and_a_run_both_trained_and_given_are_refused():
    raw = json.loads(json.dumps(PARAMS))
    raw["profiles"]["released"]["checkpoints"]["sdnet_18"] = "x.pth"
    with pytest.raises(ConfigError, match="did you mean 'sdnet18'"):
        parse_params(raw)
    raw = json.loads(json.dumps(PARAMS))
    raw["profiles"]["quick"]["checkpoints"]["sdnet18"] = "x.pth"
    with pytest.raises(ConfigError, match="sdnet18 both trained .train.runs. and given as a checkpoint file"):
        parse_params(raw)


# ---------------------------------------------------------------------------------------------
# The study loads them
# ---------------------------------------------------------------------------------------------


def test_a_released_run_loads_as_the_authors_network_with_their_lambda(tmp_path):
    root = repository(tmp_path, sdnet18="sd.pth.tar", sdnet18_all_noshortcut="chain.pth.tar")
    released_file(root / "sd.pth.tar")
    released_file(root / "chain.pth.tar", "cifar10/sdnet18_all_noshortcut")
    study = load_study(root=root)
    model, ckpt = study.load_model("sdnet18", device="cpu")
    assert model.released.run == "sdnet18" and ckpt["released"] == str(root / "sd.pth.tar")
    assert study.train_lam("sdnet18") == 0.1 and model.conv1.lam == 0.1
    assert study.load_model("sdnet18_all_noshortcut", device="cpu")[0].released.run == "sdnet18_all_noshortcut"
    assert torch.isfinite(model(torch.rand(2, 3, 32, 32))).all()


def test_a_file_of_another_network_is_refused(tmp_path):
    root = repository(tmp_path, sdnet18="chain.pth.tar")
    released_file(root / "chain.pth.tar", "cifar10/sdnet18_all_noshortcut")
    with pytest.raises(Exception, match="holds sdnet18_all without shortcuts with the cifar stem and 10 classes, not the run 'sdnet18' on cifar10"):
        load_study(root=root).load_model("sdnet18", device="cpu")
    released_file(root / "chain.pth.tar", "cifar100/sdnet18")
    with pytest.raises(Exception, match="holds sdnet18 with the cifar stem and 100 classes, not the run 'sdnet18' on cifar10"):
        load_study(root=root).load_model("sdnet18", device="cpu")


def test_a_resnet18_trained_by_this_project_may_be_named(tmp_path):
    from sdnet.checkpoint import FORMAT, architecture, build_from, save_atomic

    arch = architecture("resnet18", 10, "cifar", lam=0.1, n_steps=2, shortcut=True, width=8)
    model = build_from(arch)
    save_atomic({"format": FORMAT, "arch": arch, "model": model.state_dict(), "epoch": 3, "config": {"lam": 0.1, "epochs": 3}},
                tmp_path / "ours.pt")
    root = repository(tmp_path, sdnet18="sd.pth.tar", resnet18="ours.pt")
    released_file(root / "sd.pth.tar")
    study = load_study(root=root)
    loaded, ckpt = study.load_model("resnet18", device="cpu")
    assert ckpt["epoch"] == 3 and not hasattr(loaded, "released")
    assert torch.equal(loaded.fc.weight, model.fc.weight)


# ---------------------------------------------------------------------------------------------
# End to end: the profile's stages on synthetic released files
# ---------------------------------------------------------------------------------------------

# The released profile as it is, shrunk to seconds: the embedded synthetic set, a few images.
TINY = [
    "profiles.released.data.datasets=[synthetic]", "profiles.released.data.limit=200", "profiles.released.train.device=cpu",
    "profiles.released.train.progress=false", "profiles.released.csc_layer.images=8", "profiles.released.csc_layer.max_steps=10",
    "profiles.released.robustness.severities=[1,5]", "profiles.released.robustness.lambdas=[0.1,0.5,1.0]",
    "profiles.released.robustness.test_images=40", "profiles.released.adversarial.lambdas=[0.1,0.5]",
    "profiles.released.adversarial.steps=2", "profiles.released.adversarial.test_images=20", "profiles.released.visualize.images=2",
    "profiles.released.adversarial.check_images=8", "profiles.released.adversarial.check_steps=4", "profiles.released.adversarial.sweep_linf_eps=[0.03,0.5]",
    "profile=released",
]


@pytest.mark.e2e
def test_the_released_profile_runs_end_to_end_on_released_files(tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=skip_local_state)
    released_file(work / "data/released/cifar10/sdnet18/model_best.pth.tar")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(work)}
    # SDNet-18 alone: the optional networks' fallbacks (the quick profile's pipeline test runs the chapters with them)
    files = ["profiles.released.checkpoints.sdnet18=data/released/cifar10/sdnet18/model_best.pth.tar"]

    # 1. The computing stages: nothing is trained, the noise and attack stages run on the files.
    runner = [sys.executable, "-m", "sdnet.pipeline", "run", "--profile", "released", *(f"--set={s}" for s in TINY + files)]
    result = subprocess.run(runner, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = work / "reports" / "released"
    sdnet18 = json.loads((reports / "train" / "sdnet18.json").read_text())
    assert sdnet18["trained"] is False and sdnet18["given"]["file"].endswith("sdnet18/model_best.pth.tar")
    assert len(sdnet18["given"]["sha256"]) == 64 and (reports / "models" / "sdnet18" / "given.json").is_file()
    assert "given" not in json.loads((reports / "train" / "resnet18.json").read_text())
    for stage in ("noise", "attacks"):
        about = json.loads((reports / "results" / stage / "about.json").read_text())
        assert about["baseline"] is None and set(about["given"]) == {"sdnet18"}, about
    assert "resnet18" not in (reports / "results" / "noise" / "sweep.csv").read_text()

    # 2. DVC records that and runs the chapters' notebooks on it.
    dvc_finishes(work, env, result.stdout)
    noise = (reports / "tables" / "03_noise_robustness" / "summary.md").read_text()
    assert "ResNet-18 (paper's, not evaluated here)" in noise
    assert "the authors' released SDNet-18 is as accurate as they publish" in (reports / "tables" / "03_noise_robustness" / "verdict.md").read_text()
    assert "not tested: no ResNet-18 given" in (reports / "tables" / "04_adversarial" / "verdict.md").read_text()
    assert "given as a checkpoint file, not trained here" in (reports / "tables" / "02_classification" / "table1.md").read_text()
    assert "not tested here" in (reports / "tables" / "05_visualization" / "verdict.md").read_text()
    assert not (reports / "figures" / "05_visualization" / "layer_reconstructions.png").exists()
    assert (reports / "RESULTS.md").is_file()



# ---------------------------------------------------------------------------------------------
# A committed study's networks, on the official CIFAR-10 files (docs/cpu-study.md, "On the official CIFAR-10 files")
# ---------------------------------------------------------------------------------------------



@pytest.mark.e2e
@pytest.mark.skipif(not MINI.is_dir(), reason="needs the exact-pixel CIFAR mini set (../shared/data/cifar-mini)")
def test_a_committed_studys_networks_run_chapters_3_to_5_on_the_official_files(tmp_path):
    """The documented command for a reader with the official CIFAR-10 files: the released profile
    given the shipped weights.pt of a committed study (here the quick one's; the cpu study's are
    named the same way) runs the noise, attack and visualisation chapters on them, with
    ResNet-18 as the baseline, and says they are this project's networks, not the authors'."""
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=skip_local_state)
    shutil.copytree(ROOT / "reports" / "quick" / "models", work / "reports" / "quick" / "models")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(work)}
    shipped = {run: f"reports/quick/models/{run}/synthetic/seed0/weights.pt" for run in ("sdnet18", "resnet18", "sdnet18_all_noshortcut")}
    official = ["profiles.released.data.datasets=[cifar10]", f"profiles.released.data.root={MINI}", "profiles.released.data.verify=false"]
    settings = [s for s in TINY if ".data.datasets=" not in s] + official + [f"profiles.released.checkpoints.{run}={file}" for run, file in shipped.items()]
    runner = [sys.executable, "-m", "sdnet.pipeline", "run", "--profile", "released", *(f"--set={s}" for s in settings)]
    result = subprocess.run(runner, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = work / "reports" / "released"
    for stage in ("noise", "attacks"):
        about = json.loads((reports / "results" / stage / "about.json").read_text())
        assert about["baseline"] == "resnet18" and set(about["given"]) == {"resnet18", "sdnet18"}, about
    assert "resnet18" in (reports / "results" / "noise" / "sweep.csv").read_text()
    dvc_finishes(work, env, result.stdout)
    verdict = (reports / "tables" / "03_noise_robustness" / "verdict.md").read_text()
    assert "authors' released SDNet-18" not in verdict  # these are this project's networks
    assert (reports / "figures" / "05_visualization" / "layer_reconstructions.png").exists()
