"""What a user can get wrong, and what can go wrong, tried through the documented entry points:
same inputs give the same result, kills and restarts, stale checkpoints, divergence, bad files."""

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import ROOT
from sdnet import checkpoint
from sdnet.config import TrainConfig
from sdnet.strict_json import json_ready, write_json
from sdnet.train import TrainingDiverged, train

pytestmark = pytest.mark.e2e

# What must be identical between two runs of the same command (times are not), besides the weights.
RESULT = ("train_loss", "train_top1", "code", "data")
TINY = ["--model", "sdnet18", "--dataset", "synthetic", "--limit", "512", "--width", "8", "--epochs", "3",
        "--batch-size", "64", "--lr", "0.05", "--device", "cpu", "--progress", "false"]


def tiny(**overrides) -> TrainConfig:
    values = dict(model="sdnet18", dataset="synthetic", limit=256, width=8, epochs=2, batch_size=64, lr=0.05, device="cpu", progress=False)
    return TrainConfig(**{**values, **overrides})


def run_cli(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=ROOT, **kwargs)


def history_without_times(folder: Path) -> list[dict]:
    with open(folder / "history.csv") as f:
        return [{k: v for k, v in row.items() if k not in ("epoch_seconds", "images_per_second")} for row in csv.DictReader(f)]


def same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same result: record (times aside), curves and weights, bit for bit."""
    ra, rb = (json.loads((d / "training.json").read_text()) for d in (a, b))
    assert {k: ra[k] for k in RESULT} == {k: rb[k] for k in RESULT}
    assert history_without_times(a) == history_without_times(b)
    wa, wb = (checkpoint.load(d / "weights.pt")["model"] for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------------------------------------
# Same command, same result
# ---------------------------------------------------------------------------------------------


def test_the_same_command_gives_bit_identical_results_even_under_load(tmp_path):
    quiet = run_cli(["sdnet.train", "--out", str(tmp_path / "a"), *TINY])
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    # The same command while another process keeps both cores busy: scheduling changes, the
    # arithmetic must not (fixed thread count, no order that depends on timing).
    burn = subprocess.Popen([sys.executable, "-c", "import torch\nx = torch.randn(800, 800)\nwhile True: x @ x"])
    try:
        loaded = run_cli(["sdnet.train", "--out", str(tmp_path / "b"), *TINY])
    finally:
        burn.kill()
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    same_run(tmp_path / "a", tmp_path / "b")
    assert json.loads(quiet.stdout)["test_top1"] == json.loads(loaded.stdout)["test_top1"]  # the command line scores it too


def _kill_when(tmp_path: Path, out: Path, ready, slow_save: bool) -> None:
    """Start the tiny training in a subprocess and SIGKILL it as soon as ``ready()`` is true.
    ``slow_save`` makes every resume-state write pause half-way, so a kill can land inside it."""
    patch = (
        "import time, torch, sdnet.checkpoint as c\n"
        "save = torch.save\n"
        "def slow(obj, f):\n"
        "    with open(f, 'wb') as h:\n"
        "        h.write(b'x' * 1000); h.flush(); time.sleep(3)\n"
        "    save(obj, f)\n"
        "c.torch.save = slow\n"
    ) if slow_save else ""
    script = patch + f"from sdnet.train import main\nmain({['--out', str(out), *TINY]!r})\n"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("when", ["after the first epoch", "while the resume state is being written"])
def test_a_killed_run_restarts_to_the_identical_result(tmp_path, when):
    reference = tmp_path / "reference"
    assert run_cli(["sdnet.train", "--out", str(reference), *TINY]).returncode == 0
    out = tmp_path / "killed"
    if when == "after the first epoch":
        _kill_when(tmp_path, out, lambda: (out / "history.csv").exists(), slow_save=False)
    else:
        _kill_when(tmp_path, out, lambda: any(out.glob(".resume.pt.*.tmp")), slow_save=True)
        assert any(out.glob(".resume.pt.*.tmp"))  # the kill did land inside the write
    if (out / "resume.pt").exists():  # history.csv never runs ahead of the resume state
        saved = checkpoint.load(out / "resume.pt")["epoch"]
        assert (out / "history.csv").read_text().count("\n") - 1 <= saved
    restarted = run_cli(["sdnet.train", "--out", str(out), *TINY])
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    same_run(reference, out)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp")) and not (out / "resume.pt").exists()
    assert (out / "history.csv").read_text().count("\n") == 1 + 3


def test_a_finished_stage_rerun_by_dvc_resumes_instead_of_retraining(tmp_path):
    """An interrupted or repeated `dvc repro` reruns `python -m sdnet.stages.train`: it must keep
    the finished networks of the same run (in seconds, their files untouched) and retrain those of another."""
    (tmp_path / "sdnet").symlink_to(ROOT / "sdnet")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    quick = params["profiles"]["quick"]
    quick["data"]["limit"] = 256
    quick["train"].update(width=8, epochs=1, per_run={}, batch_size=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "sdnet.stages.train", "resnet18"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    weights = next((tmp_path / "reports").rglob("weights.pt"))
    before = weights.read_bytes()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "training from scratch" not in again.stdout and "resuming" not in again.stdout
    assert weights.read_bytes() == before
    quick["train"]["lr"] = 0.02
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    changed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "made by another run: other parameters (lr: 0.05 -> 0.02)" in changed.stdout and "training from scratch" in changed.stdout


def test_an_unfinished_network_committed_and_cloned_resumes_to_the_same_weights(tmp_path):
    """Work that stops mid-training: the network's resume state is committed with the study, a
    fresh clone (the next machine) continues it from there, and the finished network is the one an
    uninterrupted run makes, bit for bit (same CPU kind)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    for name in ("sdnet", "params.yaml", "dvc.yaml", ".gitignore"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, origin / name)
    params = yaml.safe_load((origin / "params.yaml").read_text())
    quick = params["profiles"]["quick"]
    quick["data"]["limit"] = 512
    quick["train"].update(runs=["sdnet18"], width=8, epochs=6, per_run={}, batch_size=64, progress=False)
    (origin / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    git = lambda folder, *args: subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True, text=True).stdout  # noqa: E731
    git(origin, "init", "-q")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "the study, nothing trained")
    stage = [sys.executable, "-m", "sdnet.stages.train", "sdnet18"]
    folder = Path("reports/quick/models/sdnet18/synthetic/seed0")

    # 1. Interrupted after an epoch or more, and the folder committed as it is.
    process = subprocess.Popen(stage, cwd=origin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (origin / folder / "resume.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (origin / folder / "resume.pt").exists() and not (origin / folder / "weights.pt").exists()
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "sdnet18 unfinished")
    assert f"{folder}/resume.pt" in git(origin, "ls-files").split()  # .gitignore admits the resume state

    # 2. A fresh clone continues it where it stopped.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    resumed = subprocess.run(stage, cwd=clone, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and "/6" in resumed.stdout and "training from scratch" not in resumed.stdout
    assert not (clone / folder / "resume.pt").exists() and (clone / folder / "weights.pt").exists()

    # 3. The same network as an uninterrupted run of the first commit.
    reference = tmp_path / "reference"
    git(tmp_path, "clone", "-q", str(origin), str(reference))
    git(reference, "checkout", "-q", "HEAD~1")
    assert subprocess.run(stage, cwd=reference, capture_output=True, text=True, timeout=300).returncode == 0
    same_run(reference / folder, clone / folder)


# ---------------------------------------------------------------------------------------------
# Checkpoints of other runs
# ---------------------------------------------------------------------------------------------


def test_a_code_change_retrains_instead_of_resuming(tmp_path, monkeypatch):
    train(tiny(epochs=1), tmp_path)
    import sdnet.train as engine

    monkeypatch.setattr(engine, "weights_fingerprint", lambda: "another-version")
    with pytest.raises(checkpoint.StaleCheckpoint, match="other the sdnet code that decides the weights"):
        train(tiny(epochs=1), tmp_path)
    record = train(tiny(epochs=1), tmp_path, restart_stale=True)  # what the pipeline does
    assert record["code"] == "another-version"
    assert checkpoint.load(tmp_path / "weights.pt")["provenance"]["code"] == "another-version"


def test_other_data_is_another_run(tmp_path):
    train(tiny(epochs=1), tmp_path)
    with pytest.raises(checkpoint.StaleCheckpoint, match="parameters \\(limit: 256 -> 128\\)"):
        train(tiny(epochs=1, limit=128), tmp_path)


def test_malicious_and_damaged_checkpoints_are_refused_without_running_anything(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": checkpoint.FORMAT, "model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load(tmp_path / "evil.pt")
    assert not marker.exists()
    train(tiny(epochs=1), tmp_path / "run")
    data = (tmp_path / "run" / "weights.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    result = run_cli(["sdnet.evaluate", "--checkpoint", str(tmp_path / "truncated.pt")])
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr and "Traceback" not in result.stderr
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT}, f)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "pickled.pt")


def test_evaluate_refuses_a_dataset_with_other_classes_and_reports_the_epoch(tmp_path):
    train(tiny(epochs=2), tmp_path)
    ckpt = checkpoint.load(tmp_path / "weights.pt")
    five = checkpoint.build_from({**ckpt["arch"], "num_classes": 5})
    torch.save({**ckpt, "arch": {**ckpt["arch"], "num_classes": 5}, "model": five.state_dict()}, tmp_path / "five.pt")
    result = run_cli(["sdnet.evaluate", "--checkpoint", str(tmp_path / "five.pt")])
    assert result.returncode == 2 and "classifies 5 classes" in result.stderr
    half = {**ckpt, "epoch": 1}
    torch.save(half, tmp_path / "half.pt")
    result = run_cli(["sdnet.evaluate", "--checkpoint", str(tmp_path / "half.pt"), "--limit", "100"])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["epoch"], report["epochs"], report["finished"]) == (1, 2, False) and "did not finish" in result.stderr


# ---------------------------------------------------------------------------------------------
# Runs that go wrong
# ---------------------------------------------------------------------------------------------


def test_a_huge_finite_loss_is_a_divergence_and_writes_no_metrics(tmp_path, monkeypatch):
    import sdnet.train as engine

    original = engine.F.cross_entropy

    def huge(*args, **kwargs):  # a loss of ~1e13 whose gradients stay those of the real loss
        loss = original(*args, **kwargs)
        return loss + 1e13 * loss.detach()

    monkeypatch.setattr(engine.F, "cross_entropy", huge)
    with pytest.raises(TrainingDiverged, match="mean training loss was .*e\\+13 in epoch 1; nothing was saved and no weights"):
        train(tiny(epochs=1), tmp_path)
    assert not [p.name for p in tmp_path.iterdir() if p.name in ("training.json", "weights.pt", "resume.pt")]


def test_metrics_are_strict_json():
    values = {"top1": float("nan"), "nested": [1.0, float("inf")], "tensor": torch.tensor(2.5)}
    assert json_ready(values) == {"top1": None, "nested": [1.0, None], "tensor": 2.5}


def test_no_nan_reaches_a_json_file(tmp_path):
    write_json(tmp_path / "m.json", {"loss": float("nan")})
    assert json.loads((tmp_path / "m.json").read_text()) == {"loss": None}
    assert "NaN" not in (tmp_path / "m.json").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_asked_for_without_one():
    result = run_cli(["sdnet.train", "--out", "/tmp/never", "--device", "cuda", "--dataset", "synthetic"])
    assert result.returncode == 2 and "no CUDA GPU is available here: use device: cpu" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--dataset", "cifar10", "--data-root", "/nonexistent"], "/nonexistent/cifar-10-batches-py/batches.meta is missing"),
    (["--dataset", "cifar10-jpeg", "--data-root", "/nonexistent"], "Put the CIFAR-10 JPEG copy there"),
    (["--lr", "1e-3x"], "lr = '1e-3x' is not allowed: expected a number"),
    (["--nesterov", "maybe"], "nesterov = 'maybe' is not allowed: expected true or false"),
    (["--verfy", "false"], "unrecognized arguments: --verfy"),
])
def test_the_training_command_explains_what_is_wrong(args, message):
    result = run_cli(["sdnet.train", "--out", "/tmp/never", *args])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_damaged_and_unofficial_data_are_refused(tmp_path):
    (tmp_path / "cifar10-jpeg.tar.xz").write_bytes(b"\xfd7zXZ\x00" + b"garbage" * 100)
    result = run_cli(["sdnet.train", "--out", str(tmp_path / "o"), "--dataset", "cifar10-jpeg", "--data-root", str(tmp_path)])
    assert result.returncode == 2 and "is not the known CIFAR-10 JPEG copy" in result.stderr
    result = run_cli(["sdnet.train", "--out", str(tmp_path / "o"), "--dataset", "cifar10-jpeg", "--data-root", str(tmp_path), "--verify", "false"])
    assert result.returncode == 2 and "truncated or corrupt" in result.stderr
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        (folder / name).write_bytes(b"not a pickle")
    result = run_cli(["sdnet.train", "--out", str(tmp_path / "o"), "--dataset", "cifar10", "--data-root", str(tmp_path)])
    assert result.returncode == 2 and "is not the official CIFAR-10 file" in result.stderr
    result = run_cli(["sdnet.train", "--out", str(tmp_path / "o"), "--dataset", "cifar10", "--data-root", str(tmp_path), "--verify", "false"])
    assert result.returncode == 2 and "truncated, corrupt or not a CIFAR pickle" in result.stderr
