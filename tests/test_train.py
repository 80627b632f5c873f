"""Training engine: config validation, schedules, checkpoints, resume, divergence, DDP on CPU."""

import csv
import json
import os
import socket
import subprocess
import sys


import pytest
import torch


from helpers import ROOT
from sdnet import checkpoint
from sdnet.config import ConfigError, TrainConfig, recipe
from sdnet.device import use_bf16
from sdnet.train import TrainingDiverged, config_from_args, image_size, learning_rate, parameter_groups, train


def tiny(**overrides) -> TrainConfig:
    """A seconds-long CPU run on the embedded synthetic dataset."""
    values = dict(model="sdnet18", dataset="synthetic", limit=256, width=8, epochs=2, batch_size=64, lr=0.05, device="cpu", progress=False)
    return TrainConfig(**{**values, **overrides})


@pytest.mark.parametrize("key,value", [("model", "resnet50"), ("dataset", "mnist"), ("lam", -0.1), ("n_steps", 0), ("epochs", 0), ("schedule", "linear"), ("shortcut", False)])
def test_bad_parameters_fail_before_any_work(key, value):
    with pytest.raises(ConfigError, match=key):
        TrainConfig(**{key: value})


def test_unknown_parameter_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})


def test_recipes_are_the_papers():
    cifar, imagenet = recipe("cifar"), recipe("imagenet")
    assert (cifar.lr, cifar.batch_size, cifar.epochs, cifar.weight_decay, cifar.nesterov, cifar.schedule) == (0.1, 128, 220, 5e-4, True, "cosine")
    assert (imagenet.batch_size, imagenet.epochs, imagenet.weight_decay, imagenet.milestones) == (512, 100, 1e-4, [30, 60, 90])


def test_schedules():
    cfg = TrainConfig(epochs=10, lr=0.1, eta_min=1e-6)
    assert learning_rate(cfg, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 500, 100) == pytest.approx((0.1 + 1e-6) / 2)
    assert learning_rate(cfg, 999, 100) == pytest.approx(1e-6, abs=1e-5)
    step = TrainConfig(epochs=100, schedule="step", milestones=[30, 60, 90])
    assert [learning_rate(step, e * 10, 10) for e in (0, 30, 60, 95)] == pytest.approx([0.1, 0.01, 0.001, 0.0001])
    one = TrainConfig(epochs=10, schedule="onecycle", warmup_epochs=2, lr=0.4, eta_min=0.0)
    assert learning_rate(one, 199, 100) == pytest.approx(0.4) and learning_rate(one, 1000, 100) == pytest.approx(0.0)


def test_weight_decay_spares_norms_and_biases_only_when_asked():
    from sdnet.models import build

    model = build("sdnet18", num_classes=10, width=8)
    norms_and_biases = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    norms_and_biases |= {id(m.bias) for m in model.modules() if isinstance(getattr(m, "bias", None), torch.nn.Parameter)}
    (every,) = parameter_groups(model, 5e-4)
    assert every["weight_decay"] == 5e-4 and len(every["params"]) == len(list(model.parameters()))
    decayed, spared = parameter_groups(model, 5e-4, decay_norm_and_bias=False)
    assert {id(p) for p in spared["params"]} == norms_and_biases | {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert spared["weight_decay"] == 0 and decayed["weight_decay"] == 5e-4
    assert id(model.conv1.weight) in {id(p) for p in decayed["params"]}  # the CSC dictionary is decayed like a conv weight
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))


def test_zero_init_residual_starts_blocks_with_a_shortcut_as_the_identity():
    from sdnet.models import BasicBlock, build, zero_init_residual

    torch.manual_seed(0)
    for name, shortcut in (("sdnet18", True), ("sdnet18_all", False)):
        model = build(name, num_classes=10, width=8, shortcut=shortcut).eval()
        zero_init_residual(model)
        x = torch.rand(2, 4, 8, 8)
        for block in (m for m in model.modules() if isinstance(m, BasicBlock) and m.downsample is None and m.conv1.in_channels == 4):
            if shortcut:  # the block is relu(x) exactly: its residual branch is multiplied by zero
                torch.testing.assert_close(block(x), torch.relu(x), rtol=0, atol=0)
            else:  # without a shortcut nothing is zeroed
                assert bool((block.bn2.weight != 0).all())


def test_train_writes_its_record_curves_and_the_finished_weights_alone(tmp_path):
    record = train(tiny(), tmp_path)
    assert set(record) >= {"train_loss", "train_seconds", "images_per_second", "parameters", "precisions", "devices", "code", "data"}
    assert "top1" not in record  # training never looks at the test split
    assert json.loads((tmp_path / "training.json").read_text()) == record
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    here = "bf16" if use_bf16(torch.device("cpu")) else "float32"  # bf16: auto
    assert [r["epoch"] for r in rows] == ["1", "2"] and {r["precision"] for r in rows} == set(record["precisions"]) == {here}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "training.json", "weights.pt"]  # resume.pt is gone
    model, ckpt = checkpoint.load_model(tmp_path / "weights.pt")
    assert ckpt["epoch"] == 2 and model.conv1.power_vector is not None and "optimizer" not in ckpt
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())


def test_a_finished_run_is_not_trained_again(tmp_path):
    record = train(tiny(epochs=1), tmp_path)
    weights = (tmp_path / "weights.pt").read_bytes()
    assert train(tiny(epochs=1, progress=True), tmp_path) == record  # a resume-neutral change
    assert (tmp_path / "weights.pt").read_bytes() == weights


def _same_weights(a, b) -> None:
    wa, wb = checkpoint.load(a / "weights.pt")["model"], checkpoint.load(b / "weights.pt")["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("bf16", [False, True])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, bf16):
    cfg = tiny(epochs=3, bf16=bf16)
    full = train(cfg, tmp_path / "full")
    _killed_after_epoch(cfg, tmp_path / "resumed", epoch=1)
    assert checkpoint.load(tmp_path / "resumed" / "resume.pt")["epoch"] == 1
    assert not (tmp_path / "resumed" / "weights.pt").exists()
    resumed = train(cfg, tmp_path / "resumed")
    assert resumed["train_loss"] == full["train_loss"]
    _same_weights(tmp_path / "full", tmp_path / "resumed")


def test_a_resumed_run_keeps_its_precision_unless_told_to_switch(tmp_path, monkeypatch, capsys):
    """A run started in bf16 on a CPU with native bf16 and resumed on one without (bf16: auto
    there means float32) continues in bf16, and its rows say so; bf16: false switches it."""
    import sdnet.train as engine

    monkeypatch.setattr(engine, "use_bf16", lambda device, bf16="auto": bf16 is True)  # "auto": this CPU has no native bf16
    started = tiny(epochs=3, bf16=True)
    _killed_after_epoch(started, tmp_path / "kept", epoch=1)
    train(tiny(epochs=3), tmp_path / "kept")  # bf16: auto
    assert "continuing in bf16" in capsys.readouterr().out
    assert [r["precision"] for r in csv.DictReader((tmp_path / "kept" / "history.csv").open())] == ["bf16"] * 3
    _killed_after_epoch(started, tmp_path / "switched", epoch=1)
    record = train(tiny(epochs=3, bf16=False), tmp_path / "switched")
    assert [r["precision"] for r in csv.DictReader((tmp_path / "switched" / "history.csv").open())] == ["bf16", "float32", "float32"]
    assert record["precisions"] == ["bf16", "float32"]


def test_progressive_resizing_grows_the_images_and_resumes_exactly(tmp_path):
    cfg = TrainConfig(epochs=10, start_size=16, ramp_epochs=8)
    assert [image_size(cfg, e, 32) for e in range(10)] == [16, 16, 20, 20, 24, 24, 28, 28, 32, 32]
    cfg = tiny(epochs=3, start_size=16, ramp_epochs=2)  # 32x32 synthetic images: sides 16, 24, 32
    full = train(cfg, tmp_path / "full")
    assert [r["image_size"] for r in csv.DictReader((tmp_path / "full" / "history.csv").open())] == ["16", "24", "32"]
    _killed_after_epoch(cfg, tmp_path / "resumed", epoch=1)
    assert train(cfg, tmp_path / "resumed")["train_loss"] == full["train_loss"]
    _same_weights(tmp_path / "full", tmp_path / "resumed")
    with pytest.raises(ConfigError, match="ramp_epochs"):
        TrainConfig(epochs=10, start_size=16)


class Killed(Exception):
    pass


def _killed_after_epoch(cfg: TrainConfig, out, epoch: int) -> None:
    """Run ``train`` and kill it (an exception) right after epoch ``epoch`` was checkpointed."""
    original = checkpoint.save_atomic

    def save_then_die(obj, path):
        original(obj, path)
        if obj["epoch"] >= epoch:
            raise Killed

    checkpoint.save_atomic = save_then_die
    try:
        with pytest.raises(Killed):
            train(cfg, out)
    finally:
        checkpoint.save_atomic = original


def test_checkpoint_of_other_parameters_or_architecture_is_refused(tmp_path):
    train(tiny(epochs=1), tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="other parameters"):
        train(tiny(epochs=1, model="resnet18"), tmp_path)
    ckpt = checkpoint.load(tmp_path / "weights.pt")
    other = checkpoint.build_from({**ckpt["arch"], "model": "resnet18"})
    with pytest.raises(checkpoint.CheckpointError, match="another architecture"):
        checkpoint.load_weights(other, ckpt, expected_arch={**ckpt["arch"], "model": "resnet18"})
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load(tmp_path / "broken.pt")


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_resume_state(tmp_path):
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(tiny(epochs=1, lr=1e12, model="resnet18"), tmp_path / "nan")
    assert not (tmp_path / "nan" / "weights.pt").exists()
    with pytest.raises(TrainingDiverged, match=r"last good resume state \(epoch 1\)"):
        _diverge_after_one_epoch(tmp_path / "two")
    assert checkpoint.load(tmp_path / "two" / "resume.pt")["epoch"] == 1
    assert not (tmp_path / "two" / "weights.pt").exists()


def _diverge_after_one_epoch(out) -> None:
    cfg = tiny(epochs=2)
    import sdnet.train as t

    original = t.learning_rate
    t.learning_rate = lambda c, it, spe: original(c, it, spe) if it < spe else 1e12
    try:
        train(cfg, out)
    finally:
        t.learning_rate = original


def test_a_pipeline_run_with_flags_as_one_network(tmp_path):
    # The documented `python -m sdnet.stages.train sdnet18 --profile paper --out ...`, from the repository's own params.yaml.
    from sdnet.params import load_params
    from sdnet.stages.train import main, one_network

    params = load_params(ROOT / "params.yaml", "paper")
    cfg = one_network(params, ROOT, "sdnet18_all_noshortcut", {"dataset": "cifar100", "epochs": 5, "lam": 0.3})
    assert (cfg.model, cfg.shortcut, cfg.dataset, cfg.epochs, cfg.lam, cfg.width) == ("sdnet18_all", False, "cifar100", 5, 0.3, 64)
    with pytest.raises(ConfigError, match="unknown run"):
        one_network(params, ROOT, "sdnet19", {})
    with pytest.raises(ConfigError, match="profile 'papr' is not in"):
        load_params(ROOT / "params.yaml", "papr")
    with pytest.raises(SystemExit) as exited:  # a flag without --out would silently not be the stage's own values
        main(["sdnet18", "--profile", "paper", "--epochs", "5"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit):  # the trainer's own command has no profiles
        config_from_args(["--out", str(tmp_path), "--profile", "paper"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_on_cpu_with_two_processes(tmp_path):
    """torchrun --nproc_per_node=2 with the gloo backend on tiny data."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "sdnet.train",
           "--out", str(tmp_path), "--model", "resnet18", "--dataset", "synthetic", "--limit", "256", "--width", "8",
           "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--progress", "false"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "training.json").read_text())["world_size"] == 2
    printed = json.loads(result.stdout[result.stdout.index("{"):])  # the record and the test accuracy, scored by both ranks
    assert printed["world_size"] == 2 and 0 <= printed["test_top1"] <= 100
