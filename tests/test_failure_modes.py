"""What a user can get wrong, and what can go wrong, tried through the documented entry points:
same inputs give the same result, kills and restarts, stale checkpoints, divergence, bad files."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from sdnet import checkpoint
from sdnet.config import TrainConfig
from sdnet.strict_json import json_ready, write_json
from sdnet.train import TrainingDiverged, train

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
# What must be identical between two runs of the same command (times are not).
RESULT = ("top1", "top5", "loss", "train_loss", "code", "data")
TINY = ["--model", "sdnet18", "--dataset", "synthetic", "--limit", "512", "--width", "8", "--epochs", "3",
        "--batch-size", "64", "--lr", "0.05", "--device", "cpu", "--progress", "false"]


def tiny(**overrides) -> TrainConfig:
    values = dict(model="sdnet18", dataset="synthetic", limit=256, width=8, epochs=2, batch_size=64, lr=0.05, device="cpu", progress=False)
    return TrainConfig(**{**values, **overrides})


def run_cli(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=ROOT, **kwargs)


def history_without_times(folder: Path) -> list[dict]:
    rows = checkpoint.load(folder / "checkpoint.pt")["history"]
    return [{k: v for k, v in row.items() if k not in ("epoch_seconds", "images_per_second")} for row in rows]


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
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    assert {k: a[k] for k in RESULT} == {k: b[k] for k in RESULT}
    assert history_without_times(tmp_path / "a") == history_without_times(tmp_path / "b")


def _kill_when(tmp_path: Path, out: Path, ready, slow_save: bool) -> None:
    """Start the tiny training in a subprocess and SIGKILL it as soon as ``ready()`` is true.
    ``slow_save`` makes every checkpoint write pause half-way, so a kill can land inside it."""
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


@pytest.mark.parametrize("when", ["after the first epoch", "while a checkpoint is being written"])
def test_a_killed_run_restarts_to_the_identical_result(tmp_path, when):
    reference = tmp_path / "reference"
    assert run_cli(["sdnet.train", "--out", str(reference), *TINY]).returncode == 0
    out = tmp_path / "killed"
    if when == "after the first epoch":
        _kill_when(tmp_path, out, lambda: (out / "history.csv").exists(), slow_save=False)
    else:
        _kill_when(tmp_path, out, lambda: any(out.glob(".checkpoint.pt.*.tmp")), slow_save=True)
        assert any(out.glob(".checkpoint.pt.*.tmp"))  # the kill did land inside the write
    if (out / "checkpoint.pt").exists():  # history.csv never runs ahead of the checkpoint
        saved = checkpoint.load(out / "checkpoint.pt")["epoch"]
        assert (out / "history.csv").read_text().count("\n") - 1 <= saved
    restarted = run_cli(["sdnet.train", "--out", str(out), *TINY])
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (reference, out))
    assert {k: a[k] for k in RESULT} == {k: b[k] for k in RESULT}
    assert history_without_times(reference) == history_without_times(out)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert (out / "history.csv").read_text().count("\n") == 1 + 3


def test_a_finished_stage_rerun_by_dvc_resumes_instead_of_retraining(tmp_path):
    """An interrupted or repeated `dvc repro` reruns `python -m sdnet.stages.train`: it must pick
    up the checkpoints of the same run and retrain those of another."""
    (tmp_path / "sdnet").symlink_to(ROOT / "sdnet")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    quick = params["profiles"]["quick"]
    quick["data"]["limit"] = 256
    quick["train"].update(width=8, epochs=1, per_run={}, batch_size=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "sdnet.stages.train", "resnet18"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "resuming" in again.stdout and "from epoch 1/1" in again.stdout
    quick["train"]["lr"] = 0.02
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    changed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "made by another run: other parameters (lr: 0.05 -> 0.02)" in changed.stdout and "training from scratch" in changed.stdout


# ---------------------------------------------------------------------------------------------
# Checkpoints of other runs
# ---------------------------------------------------------------------------------------------


def test_a_code_change_retrains_instead_of_resuming(tmp_path, monkeypatch):
    train(tiny(epochs=1), tmp_path)
    import sdnet.train as engine

    monkeypatch.setattr(engine, "code_fingerprint", lambda module: "another-version")
    with pytest.raises(checkpoint.StaleCheckpoint, match="other the sdnet code it ran"):
        train(tiny(epochs=1), tmp_path)
    metrics = train(tiny(epochs=1), tmp_path, restart_stale=True)  # what the pipeline does
    assert metrics["code"] == "another-version"
    assert checkpoint.load(tmp_path / "checkpoint.pt")["provenance"]["code"] == "another-version"


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
    data = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    result = run_cli(["sdnet.evaluate", "--checkpoint", str(tmp_path / "truncated.pt")])
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr and "Traceback" not in result.stderr
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT}, f)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "pickled.pt")


def test_evaluate_refuses_a_dataset_with_other_classes_and_reports_the_epoch(tmp_path):
    train(tiny(epochs=2), tmp_path)
    ckpt = checkpoint.load(tmp_path / "checkpoint.pt")
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
    with pytest.raises(TrainingDiverged, match="mean training loss was .*e\\+13 in epoch 1; no checkpoint was written and no metrics"):
        train(tiny(epochs=1), tmp_path)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "checkpoint.pt").exists()


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
