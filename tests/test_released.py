"""The authors' released checkpoints (sdnet.released), without the real files.

tests/fixtures/released_keys.json lists the names and shapes of the authors' parameters and
buffers per network (derived by hand from their model definitions: make_released_keys.py).
Synthetic checkpoints are built from it in each layout their training script writes. The
forward of the loaded model is compared with an independent re-implementation of the authors'
forward (below, plain torch, from their equations: csc_layer.py, sdnet.py, sdnet_inverse.py),
on narrow copies (width 8 instead of 64) so that the tests take seconds.
"""

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sdnet.csc import csc_layers
from sdnet.released import ReleasedCheckpointError, load_released, main

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "released_keys.json").read_text())
NETWORKS = [name for name in FIXTURE if not name.startswith("_")]
WIDENED = {64, 128, 256, 512}  # channel counts that scale with the width


def synthetic_state(name: str, width: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict with the authors' names for ``name``, channels scaled to ``width``: atoms near
    (not exactly) unit norm, as after a last optimiser step; plausible BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in FIXTURE[name]:
        shape = [d * width // 64 if d in WIDENED else d for d in shape]
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7820)
        elif key.endswith("step_size"):
            state[key] = torch.tensor(0.1)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:  # BatchNorm weight
            state[key] = 1 + 0.2 * torch.randn(shape, generator=g)
        elif len(shape) == 4:
            w = torch.randn(shape, generator=g)
            norm = w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            state[key] = w / norm * (1 + 1e-3 * torch.randn(shape[0], 1, 1, 1, generator=g))
        else:  # linear
            state[key] = torch.randn(shape, generator=g) / shape[-1] ** 0.5
    return state


def save(path: Path, state: dict, layout: str) -> Path:
    """``state`` in one of the authors' layouts: ``best`` (model_best.pth.tar: the bare
    state_dict), ``checkpoint`` (checkpoint.pth.tar: epoch, state_dict, perf, optimizer, lr
    scheduler) or ``dataparallel`` (keys prefixed with ``module.``)."""
    if layout == "checkpoint":
        obj = {"epoch": 220, "state_dict": state, "perf": torch.tensor(95.3),
               "optimizer": {"state": {}, "param_groups": [{"lr": 1e-6, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True, "params": [0, 1]}]},
               "lr_scheduler": {"T_max": 1e5, "eta_min": 1e-6, "base_lrs": [0.1], "last_epoch": 85800, "_last_lr": [1e-6]}}
    elif layout == "dataparallel":
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = state
    torch.save(obj, path)
    return path


# ---------------------------------------------------------------------------------------------
# The authors' forward, re-implemented from their equations (independent of sdnet's models)
# ---------------------------------------------------------------------------------------------

MEAN = {"cifar": (0.4914, 0.4822, 0.4465), "imagenet": (0.485, 0.456, 0.406)}
STD = {"cifar": (0.2023, 0.1994, 0.2010), "imagenet": (0.229, 0.224, 0.225)}


def reference_csc(x, weight, stride, padding, codes, lam=0.1):
    """DictBlock: unit-norm atoms, t = 0.9 / L (L: top eigenvalue of A^T A in the code space),
    z = relu(softshrink(t A^T x)), one ISTA step; stride 2 synthesises with output_padding 1."""
    w = weight / weight.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    op = 0 if stride == 1 else 1
    code_size = [(n + 2 * padding - weight.shape[-1]) // stride + 1 for n in x.shape[-2:]]
    # Their L is a power iteration's in the code space; its limit is the top eigenvalue of A^T A,
    # computed here exactly from the dense matrix (small layers only).
    w64 = w.double()
    basis = torch.eye(w.shape[0] * code_size[0] * code_size[1], dtype=torch.float64).view(-1, w.shape[0], *code_size)
    gram = F.conv2d(F.conv_transpose2d(basis, w64, stride=stride, padding=padding, output_padding=op), w64, stride=stride, padding=padding)
    t = 0.9 / torch.linalg.eigvalsh(gram.flatten(1))[-1].item()
    shrink = lambda v: F.relu(F.softshrink(v, lam * t))
    z = shrink(t * F.conv2d(x, w, stride=stride, padding=padding))
    residual = x - F.conv_transpose2d(z, w, stride=stride, padding=padding, output_padding=op)
    z = shrink(z + t * F.conv2d(residual, w, stride=stride, padding=padding))
    codes.append(z)
    return z


def reference_bn(x, s, p):
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"], training=False, eps=1e-5)


def reference_forward(s, x, stem):
    """The authors' SDNet-18 / SDNet-18-All / ResNet-18 forward on images ``x`` in [0, 1]."""
    codes = []
    x = (x - torch.tensor(MEAN[stem]).view(1, 3, 1, 1)) / torch.tensor(STD[stem]).view(1, 3, 1, 1)
    k, st, pad = (3, 1, 1) if stem == "cifar" else (7, 2, 3)
    every = "layer1.layers.0.conv1.dn.weight" in s
    if "layer0.0.dn.weight" in s:
        out = reference_bn(reference_csc(x, s["layer0.0.dn.weight"], st, pad, codes), s, "layer0.1")
    else:
        out = F.relu(reference_bn(F.conv2d(x, s["layer0.0.weight"], stride=st, padding=pad), s, "layer0.1"))
    if stem == "imagenet":
        out = reference_csc(out, s["layer0.2.dn.weight"], 2, 1, codes) if every else F.max_pool2d(out, 3, 2, 1)
    for stage in range(1, 5):
        for block in range(2):
            p = f"layer{stage}.layers.{block}" if every else f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            if every:
                y = reference_bn(reference_csc(out, s[f"{p}.conv1.dn.weight"], stride, 1, codes), s, f"{p}.bn1")
                y = reference_bn(reference_csc(y, s[f"{p}.conv2.dn.weight"], 1, 1, codes), s, f"{p}.bn2")
            else:
                y = F.relu(reference_bn(F.conv2d(out, s[f"{p}.conv1.weight"], stride=stride, padding=1), s, f"{p}.bn1"))
                y = reference_bn(F.conv2d(y, s[f"{p}.conv2.weight"], padding=1), s, f"{p}.bn2")
            shortcut = not every or any(".shortcut." in key for key in s)
            if shortcut:
                identity = out
                if f"{p}.shortcut.0.weight" in s:
                    identity = reference_bn(F.conv2d(out, s[f"{p}.shortcut.0.weight"], stride=stride), s, f"{p}.shortcut.1")
                y = F.relu(y + identity)
            out = y
    return F.linear(out.mean(dim=(2, 3)), s["linear.weight"], s["linear.bias"]), codes


def our_forward(model, x):
    codes, hooks = [], [layer.register_forward_hook(lambda m, i, o: codes.append(o)) for _, layer in csc_layers(model)]
    try:
        with torch.no_grad():
            return model(x), codes
    finally:
        for h in hooks:
            h.remove()


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

EXPECTED = {
    "cifar10/sdnet18": "sdnet18", "cifar100/sdnet18": "sdnet18", "cifar10/sdnet18_all": "sdnet18_all",
    "cifar10/sdnet18_all_noshortcut": "sdnet18_all_noshortcut", "cifar10/resnet18": "resnet18",
    "imagenet/sdnet18": "sdnet18", "imagenet/sdnet18_all": "sdnet18_all", "imagenet/sdnet18_all_noshortcut": "sdnet18_all_noshortcut",
}


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_of_the_real_size_loads_strictly(name, tmp_path):
    assert set(NETWORKS) == set(EXPECTED)
    state = synthetic_state(name)
    model = load_released(save(tmp_path / "model_best.pth.tar", state, "best"), image_size=0)
    arch = model.released
    assert arch.run == EXPECTED[name]
    assert (arch.stem, arch.width, arch.num_classes) == (name.split("/")[0].replace("cifar100", "cifar").replace("cifar10", "cifar"), 64,
                                                         {"cifar10": 10, "cifar100": 100, "imagenet": 1000}[name.split("/")[0]])
    # every tensor of the file is used: the weights and statistics as ours, the step sizes kept aside
    ours = model.state_dict()
    assert len(ours) + len(model.released_step_sizes) == len(state)
    assert sum(t.numel() for t in ours.values()) == sum(t.numel() for k, t in state.items() if not k.endswith("step_size"))
    assert torch.equal(ours["fc.weight"], state["linear.weight"])


@pytest.mark.parametrize("layout", ["best", "checkpoint", "dataparallel"])
def test_each_layout_of_their_training_script_loads(layout, tmp_path):
    state = synthetic_state("cifar10/sdnet18", width=8)
    model = load_released(save(tmp_path / "f.pth.tar", state, layout), image_size=8)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    logits, _ = our_forward(model, x)
    again, _ = our_forward(load_released(save(tmp_path / "g.pth.tar", state, layout), image_size=8), x)
    assert torch.isfinite(logits).all() and torch.equal(logits, again)  # deterministic, also across loads


@pytest.mark.parametrize("name,size", [
    ("cifar10/sdnet18", 8), ("cifar10/sdnet18_all", 8), ("cifar10/sdnet18_all_noshortcut", 8), ("cifar10/resnet18", 8),
    ("imagenet/sdnet18", 32), ("imagenet/sdnet18_all", 32), ("imagenet/sdnet18_all_noshortcut", 32),
])
def test_the_loaded_model_computes_the_authors_forward(name, size, tmp_path):
    # Sizes where every stride-2 layer gets an even input, as at 32 and 224: the authors'
    # synthesis always uses output_padding=1 at stride 2, which only fits even sizes.
    torch.manual_seed(0)
    state = synthetic_state(name, width=8, seed=1)
    model = load_released(save(tmp_path / "f.pth.tar", state, "best"), image_size=size)
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(2))
    logits, codes = our_forward(model, x)
    ref_logits, ref_codes = reference_forward(state, x, "cifar" if name.startswith("cifar") else "imagenet")
    assert len(codes) == len(ref_codes)
    for ours, theirs in zip(codes, ref_codes):
        assert ours.shape == theirs.shape
        assert (ours - theirs).norm() <= 1e-4 * theirs.norm() + 1e-6
    assert (logits - ref_logits).norm() <= 1e-4 * ref_logits.norm()


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def test_a_truncated_file_is_refused(tmp_path):
    path = save(tmp_path / "f.pth.tar", synthetic_state("cifar10/sdnet18", width=8), "checkpoint")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ReleasedCheckpointError, match="truncated or not a PyTorch checkpoint"):
        load_released(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "it-ran"
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": synthetic_state("cifar10/sdnet18", width=8), "extra": _RunsCode(marker)}, path)
    with pytest.raises(ReleasedCheckpointError, match="refused"):
        load_released(path)
    assert not marker.exists()


def test_unknown_architectures_and_unmatched_keys_are_named(tmp_path):
    ours = {"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 64)}
    with pytest.raises(ReleasedCheckpointError, match="unknown architecture"):
        load_released(save(tmp_path / "a.pth", ours, "best"))
    state = synthetic_state("cifar10/sdnet18", width=8)
    del state["layer3.1.bn2.running_var"]
    state["layer3.1.extra.weight"] = torch.zeros(1)
    with pytest.raises(ReleasedCheckpointError, match=r"layer3\.1\.extra\.weight.*layer3\.1\.bn2\.running_var"):
        load_released(save(tmp_path / "b.pth", state, "best"))
    with pytest.raises(ReleasedCheckpointError, match="no file at .*Delay-Xili/SDNet"):
        load_released(tmp_path / "absent.pth.tar")


def test_check_prints_the_architecture(tmp_path, capsys):
    path = save(tmp_path / "f.pth.tar", synthetic_state("cifar10/sdnet18", width=8), "checkpoint")
    main(["--check", str(path)])
    out = capsys.readouterr().out
    assert "SDNet-18, CIFAR stem (3x3 stride 1), width 8, 10 classes" in out and "every key used" in out and "logits finite: True" in out
