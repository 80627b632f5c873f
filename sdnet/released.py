"""The authors' released networks as sdnet models: their checkpoint files, our layers, their semantics.

    from sdnet.released import load_released
    model = load_released("model_best.pth.tar")        # eval mode; takes images in [0, 1]
    python -m sdnet.released --check model_best.pth.tar  # what the file is, and how it loads

The authors (github.com/Delay-Xili/SDNet, README "Pre-trained Models", Google Drive folders: see
:data:`RELEASED_LINKS`) publish SDNet-18 and SDNet-18-All (with and without
shortcuts) trained on CIFAR-10, CIFAR-100 and ImageNet. Their training script writes
``checkpoint.pth.tar`` (a dict whose ``state_dict`` is the model's) and ``model_best.pth.tar`` /
``final_state.pth.tar`` (the bare ``state_dict``); a model saved from inside ``nn.DataParallel``
has every key prefixed with ``module.``. All three layouts are read, with
``torch.load(weights_only=True)``: a file that holds anything but tensors and plain containers is
refused, never executed.

What is read from the tensors alone: the network (their ``layer0.0.dn.weight`` is a CSC stem,
``layer1.layers.0.conv1.dn.weight`` a CSC block of the -All networks, a plain
``layer0.0.weight`` their ResNet baseline), the depth (blocks per stage: 18 or 34 layers), the
stem (a 3x3 stem kernel is their CIFAR stem, 7x7 their ImageNet stem), the width (stem atoms),
the number of classes (``linear.weight``) and, for the -All networks, whether the blocks keep
their shortcuts (``shortcut.0.weight`` keys). Every key of the file must be used and every weight
of our model filled (:class:`ReleasedCheckpointError` names the keys that do not match).

Equal semantics (their ``Lib/models/csc_layer.py``, ``sdnet.py``, ``sdnet_inverse.py`` and
``cls_function.validate``, read against ours):

* the CSC layer: atoms rescaled to unit l2 norm before each forward; step ``t = 0.9 / L`` with
  ``L`` the largest eigenvalue of ``A^T A``; ``z = relu(softshrink(t A^T x, lam t))``, then one
  ISTA step ``z = relu(softshrink(z + t A^T (x - A z), lam t))``; their configs use lambda 0.1,
  2 steps, mu 0, non-negative codes; stride-2 layers synthesise with ``output_padding=1``. Ours
  computes the same (``sdnet.csc``);
* the networks: CSC stem + BatchNorm without ReLU; SDNet-18 blocks are ResNet blocks; -All blocks
  are ``relu(bn2(csc2(bn1(csc1(x)))) + shortcut(x))``, without shortcut ``bn2(csc2(bn1(csc1(x))))``
  (no ReLU at all); ``linear`` on the average-pooled features: ours (``sdnet.models``) is the same;
* the ImageNet -All stem is CSC 7x7/2, BatchNorm, then a 3x3 stride-2 CSC layer (64 -> 64, no
  BatchNorm after it) where the other networks have their max-pool: the loaded model has that
  CSC layer as its ``maxpool`` module;
* input normalisation: theirs is ``transforms.Normalize`` on ``ToTensor()`` images with
  CIFAR mean (0.4914, 0.4822, 0.4465) / std (0.2023, 0.1994, 0.2010) (for CIFAR-100 too) and the
  ImageNet mean/std; ours does the same inside the model (so attacks and noise act on pixels).

Differences that remain (measured by ``tests/test_released.py`` and ``--check``):

* ``L`` is estimated differently: theirs iterates ``A^T A`` in the code space (cold start from the
  global RNG, stop when the squared change of the unit vector is below 1e-5 or after 50
  iterations, ``L = ||A v||^2``), warm-started before every batch; ours iterates ``A A^T`` in the
  input space (the same non-zero spectrum) from a fixed seed. Both converge to the same ``L``
  from below, slowly: on random width-64 dictionaries of the real shapes 50 cold iterations
  leave ``L`` about 1% low (0.7-1.8% measured, theirs and ours alike). Their per-batch warm
  start then creeps towards the top eigenvalue over an evaluation. The loaded layers start
  instead at the top eigenvector found by Lanczos (:func:`settle_step_sizes`; within 1e-4 of
  the top eigenvalue on those dictionaries, 5e-4 for the 224x224 ImageNet stem), so their
  step size is the converged value theirs approaches; against the authors' very first batch
  after loading, codes and logits can differ by about the same 1%. With ``L`` exact, codes
  and logits equal the re-implementation of their forward within 1e-4 (relative; 1e-7 to 1e-5 measured,
  ``tests/test_released.py``).
* On the first batch after loading, their step size comes from the atoms as stored in the file,
  before they are rescaled to unit norm (``update_stepsize`` runs before the forward that
  normalises them); from the second batch on it is the normalised atoms', as ours always is. The
  stored atoms' norms differ from 1 by the last optimiser step only; ``--check`` prints the
  largest deviation of a given file.
* The file's ``dn.step_size`` buffers (the last training step's ``t``) are not used for the
  forward (their evaluation overwrites them before use, as ours re-estimates ``t``); the loader
  keeps them in ``model.released_step_sizes`` and ``--check`` compares them with ours.
* At a stride-2 layer their synthesis always uses ``output_padding=1``, which fits even input
  sizes only (every stride-2 input is even at 32x32 and 224x224); at an odd size their ``A z`` is
  one pixel larger than ``x`` and the subtraction broadcasts, where ours fits the size exactly.
* With more than 2 steps their FISTA evaluates the gradient at the previous code instead of the
  extrapolated point; with the released networks' 2 steps there is no extrapolation, so nothing
  differs (and the loaded layers run 2 steps unless told otherwise).
"""

from __future__ import annotations

import argparse
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdnet.checkpoint import CheckpointError
from sdnet.config import ARCHS, command_line
from sdnet.csc import CSCConv2d, csc_layers
from sdnet.models import ResNet, build

# Where the authors publish those networks: the "Pre-trained Models" table of their README
# (github.com/Delay-Xili/SDNet), one Google Drive folder per network (checkpoint files, training
# logs, tensorboard files).
RELEASED_README = "https://github.com/Delay-Xili/SDNet#pre-trained-models"
RELEASED_LINKS: dict[tuple[str, str], str] = {
    ("cifar10", "sdnet18"): "https://drive.google.com/drive/folders/1oZELeYgrNicKMtuO6RcZgafJMieixawy",
    ("cifar10", "sdnet18_all"): "https://drive.google.com/drive/folders/184YiNng89l2S1g-DPQD_gp8jb3vaTCLw",
    ("cifar10", "sdnet18_all_noshortcut"): "https://drive.google.com/drive/folders/1SaVLqGJak-EmaTGwU14juvwIBJn9baFJ",
    ("cifar100", "sdnet18"): "https://drive.google.com/drive/folders/1EMA-f-6PsxAvaObp1zXuivl-EDFW4MPc",
    ("cifar100", "sdnet18_all"): "https://drive.google.com/drive/folders/1XYtv8Oh4wgHhP_UAF2P0AZHG0fH6AQEc",
    ("cifar100", "sdnet18_all_noshortcut"): "https://drive.google.com/drive/folders/1Jx871n7JAFVCkly8JRCBqKeQAnCNI-rH",
    ("imagenet", "sdnet18"): "https://drive.google.com/drive/folders/1USIY9H3Aa4EV0K0T71gCe2VDSbyBIVO0",
    ("imagenet", "sdnet18_all"): "https://drive.google.com/drive/folders/1vvXr96MBmTDxma6sC0FqQrPcvCO_hrh7",
    ("imagenet", "sdnet18_all_noshortcut"): "https://drive.google.com/drive/folders/1uKl1QrZyR4M0tNu7d0EF8awQtg2kMLa-",
}


def released_help(dataset: str | None = None, run: str | None = None) -> str:
    """Where the authors publish their trained networks, and where this project expects them."""
    if dataset is not None and run is not None and (dataset, run) in RELEASED_LINKS:
        where = f"the authors publish it at {RELEASED_LINKS[(dataset, run)]} (their README: {RELEASED_README})"
    else:
        where = f"the authors publish their trained networks in the 'Pre-trained Models' table of their README ({RELEASED_README}), one Google Drive folder per network"
    return (f"{where[0].upper()}{where[1:]}; download its model_best.pth.tar, for example to "
            f"data/released/{dataset or '<dataset>'}/{run or '<run>'}/model_best.pth.tar, and pass that path.")

# The authors' CSC settings in every config of experiments/*.yaml (and Lib/config/default.py).
AUTHORS_LAM, AUTHORS_STEPS = 0.1, 2
# Lanczos iterations for the converged L of each loaded layer (see settle_step_sizes).
LANCZOS_STEPS = 64
DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34}


class ReleasedCheckpointError(CheckpointError):
    """A file that is not (or not entirely) one of the authors' checkpoints."""


@dataclass(frozen=True)
class ReleasedArch:
    """What a released checkpoint holds, inferred from its tensors."""

    model: str  # a name of sdnet.models.build: sdnet18, sdnet18_all, resnet18, ...
    num_classes: int
    stem: str  # "cifar" or "imagenet"
    shortcut: bool
    width: int

    @property
    def csc_stem(self) -> bool:
        return ARCHS[self.model].csc_stem

    @property
    def csc_blocks(self) -> bool:
        return ARCHS[self.model].csc_blocks

    @property
    def run(self) -> str:
        """The run name of params.yaml ``runs`` this network is (e.g. ``sdnet18_all_noshortcut``)."""
        return self.model + ("" if self.shortcut else "_noshortcut")

    def describe(self) -> str:
        name = self.model.replace("sdnet", "SDNet-").replace("resnet", "ResNet-").replace("_all", "-All")
        shortcut = "" if not self.csc_blocks else " with shortcuts" if self.shortcut else " without shortcuts"
        stem = "CIFAR stem (3x3 stride 1)" if self.stem == "cifar" else "ImageNet stem (7x7 stride 2)"
        return f"{name}{shortcut}, {stem}, width {self.width}, {self.num_classes} classes"


# ---------------------------------------------------------------------------------------------
# Reading a file
# ---------------------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The authors' ``state_dict`` in ``path``, whichever of their layouts it is saved in.

    Refuses (:class:`ReleasedCheckpointError`) a missing, truncated or foreign file, and a pickle
    that would run code or build objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise ReleasedCheckpointError(f"no file at {path}. {released_help()}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ReleasedCheckpointError(
            f"refused to load {path}: it holds pickled objects other than tensors and plain containers "
            f"(torch.load(weights_only=True) says: {str(error).splitlines()[0]}). The authors' files hold tensors only; "
            "this one is not theirs or has been altered."
        ) from error
    except Exception as error:  # truncated archive, not a torch file at all
        raise ReleasedCheckpointError(f"cannot read {path} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): "
                                      "truncated or not a PyTorch checkpoint; download it again. " + released_help()) from error
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else raw
    if not isinstance(state, dict) or not state:
        raise ReleasedCheckpointError(f"{path} holds no state_dict (a {type(raw).__name__}): not one of the authors' checkpoints")
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise ReleasedCheckpointError(f"{path}: entries that are not tensors: {not_tensors[:5]}; not a model's state_dict")
    if all(str(k).startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _count_blocks(state: dict[str, Tensor], stage: int) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(?:layers\.)?(\d+)\.", k))}
    return max(found) + 1 if found else 0


def infer_arch(state: dict[str, Tensor]) -> ReleasedArch:
    """The network a released ``state_dict`` belongs to (see the module's docstring)."""
    if "layer0.0.dn.weight" in state:
        stem_weight, csc_stem = state["layer0.0.dn.weight"], True
    elif "layer0.0.weight" in state:
        stem_weight, csc_stem = state["layer0.0.weight"], False
    else:
        raise ReleasedCheckpointError(
            "unknown architecture: no stem 'layer0.0.dn.weight' (SDNet) or 'layer0.0.weight' (ResNet) as the authors' models "
            f"have; the file's first keys are {sorted(state)[:6]}"
        )
    csc_blocks = any(re.fullmatch(r"layer1\.layers\.\d+\.conv1\.dn\.weight", k) for k in state)
    if csc_blocks and not csc_stem:
        raise ReleasedCheckpointError("unknown architecture: CSC blocks under a plain stem (no such network in the authors' code)")
    blocks = tuple(_count_blocks(state, s) for s in (1, 2, 3, 4))
    if blocks not in DEPTHS:
        raise ReleasedCheckpointError(f"unknown architecture: {blocks} blocks per stage; the authors' networks have {' or '.join(map(str, DEPTHS))}")
    if stem_weight.dim() != 4 or tuple(stem_weight.shape[1:]) not in ((3, 3, 3), (3, 7, 7)):
        raise ReleasedCheckpointError(f"unknown architecture: stem weight of shape {tuple(stem_weight.shape)} (expected [64, 3, 3, 3] or [64, 3, 7, 7])")
    if "linear.weight" not in state:
        raise ReleasedCheckpointError("unknown architecture: no classifier 'linear.weight'")
    name = ("sdnet" if csc_stem else "resnet") + str(DEPTHS[blocks]) + ("_all" if csc_blocks else "")
    return ReleasedArch(
        model=name, num_classes=int(state["linear.weight"].shape[0]), stem="cifar" if stem_weight.shape[-1] == 3 else "imagenet",
        shortcut=not csc_blocks or any(".shortcut." in k for k in state), width=int(stem_weight.shape[0]),
    )


# ---------------------------------------------------------------------------------------------
# Our model and the key names
# ---------------------------------------------------------------------------------------------


def build_released(arch: ReleasedArch, *, lam: float = AUTHORS_LAM, n_steps: int = AUTHORS_STEPS) -> ResNet:
    """Our network of ``arch`` (random weights), with the authors' layout where it differs from
    ``sdnet.models.build``: the ImageNet -All stem's CSC layer in place of the max-pool."""
    model = build(arch.model, arch.num_classes, arch.stem, lam=lam, n_steps=n_steps, shortcut=arch.shortcut, width=arch.width)
    if arch.csc_blocks and arch.stem == "imagenet":
        model.maxpool = CSCConv2d(arch.width, arch.width, 3, 2, 1, lam=lam, n_steps=n_steps)
    return model


@torch.no_grad()
def top_eigenpair(operator, v: Tensor, steps: int = LANCZOS_STEPS) -> tuple[float, Tensor]:
    """Largest eigenvalue and its (unit) eigenvector of the symmetric PSD ``operator``, by
    ``steps`` Lanczos iterations with full reorthogonalisation from ``v``, in float64.

    Power iteration converges like (lambda_2 / lambda_1)^k, which for a convolutional dictionary
    is close to 1 (1% error after 50 iterations on random 64-atom dictionaries); Lanczos reaches
    the top eigenvalue to about 1e-7 in 64 products."""
    shape, n = v.shape, v.numel()
    basis = torch.zeros(min(steps, n), n, dtype=torch.float64, device=v.device)
    alphas, betas = [], []
    q = (v / v.norm()).double().flatten()
    for i in range(len(basis)):
        basis[i] = q
        w = operator(q.view(shape).to(v.dtype)).double().flatten()
        alphas.append(float(q @ w))
        done = basis[: i + 1]
        for _ in range(2):  # full reorthogonalisation (twice is enough)
            w -= done.T @ (done @ w)
        beta = float(w.norm())
        if beta < 1e-10 * abs(alphas[0]) or i + 1 == len(basis):
            break
        betas.append(beta)
        q = w / beta
    m = len(alphas)
    tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if m > 1:
        off = torch.tensor(betas[: m - 1], dtype=torch.float64)
        tri += torch.diag(off, 1) + torch.diag(off, -1)
    values, vectors = torch.linalg.eigh(tri)
    ritz = basis[:m].T @ vectors[:, -1].to(basis.device)
    return float(values[-1]), (ritz / ritz.norm()).view(shape).to(v.dtype)


@torch.no_grad()
def settle_step_sizes(model: nn.Module, image_size: int | tuple[int, int]) -> None:
    """Give every CSC layer of ``model`` the converged step size for ``image_size`` inputs.

    The authors' layers estimate ``L`` by a power iteration warm-started before every batch, so
    over an evaluation their ``L`` creeps up towards the top eigenvalue of ``A^T A``; ours refreshes
    once and keeps it. This computes the top eigenvector by :func:`top_eigenpair` and hands it
    to the layer as its warm start (its own power iteration then confirms it in one step), so
    the step size is the converged value, not a 50-iteration estimate about 1% too large.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    for name, input_size in input_sizes(model, size).items():
        settle_layer(model.get_submodule(name), input_size)


@torch.no_grad()
def input_sizes(model: nn.Module, image_size: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """The spatial input size of every CSC layer of ``model`` for ``image_size`` images (one
    forward of a blank image, the layers' step-size refresh cut to one iteration)."""
    layers = csc_layers(model)
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str):
        def hook(module, args) -> None:
            sizes.setdefault(name, tuple(args[0].shape[-2:]))
        return hook

    hooks = [layer.register_forward_pre_hook(record(name)) for name, layer in layers]
    saved = [(layer, layer.power_max_iter) for _, layer in layers]
    was_training = model.training
    try:
        for layer, _ in saved:
            layer.power_max_iter = 1
        model.eval()(torch.zeros(1, 3, *image_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
        for layer, max_iter in saved:
            layer.power_max_iter = max_iter
            layer.forget_step_size()
    return sizes


@torch.no_grad()
def settle_layer(layer: CSCConv2d, input_size: tuple[int, int]) -> None:
    """Normalise ``layer``'s atoms and give it the top eigenvector of its ``A A^T`` at
    ``input_size`` as warm start (see :func:`settle_step_sizes`)."""
    layer.normalize_atoms()
    weight = layer.weight.detach().float()
    op = layer.output_padding(input_size)

    def gram(u: Tensor) -> Tensor:
        return F.conv_transpose2d(F.conv2d(u, weight, stride=layer.stride, padding=layer.padding), weight,
                                  stride=layer.stride, padding=layer.padding, output_padding=op)

    start = torch.randn((1, layer.in_channels, *input_size), generator=torch.Generator().manual_seed(0)).to(weight.device)
    value, vector = top_eigenpair(gram, start)
    layer.load_solver_state({"vector": vector, "estimate": value, "step_size": None, "input_size": None})
    layer.forget_step_size()


def their_name(ours: str, arch: ReleasedArch) -> str:
    """The authors' name of one of our ``state_dict`` keys for the network ``arch``."""
    csc = ".dn" if arch.csc_blocks else ""  # their -All blocks: DictConv2d(...).dn holds the weight
    layers = ".layers" if arch.csc_blocks else ""  # and their stages are _make_layer(...).layers
    rules = [
        (r"conv1\.weight", "layer0.0.dn.weight" if arch.csc_stem else "layer0.0.weight"),
        (r"bn1\.(\w+)", r"layer0.1.\1"),
        (r"maxpool\.weight", "layer0.2.dn.weight"),
        (r"layer(\d)\.(\d+)\.(conv[12])\.weight", rf"layer\1{layers}.\2.\3{csc}.weight"),
        (r"layer(\d)\.(\d+)\.(bn[12])\.(\w+)", rf"layer\1{layers}.\2.\3.\4"),
        (r"layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)", rf"layer\1{layers}.\2.shortcut.\3.\4"),
        (r"fc\.(\w+)", r"linear.\1"),
    ]
    for pattern, replacement in rules:
        if re.fullmatch(pattern, ours):
            return re.sub(f"^{pattern}$", replacement, ours)
    raise ValueError(f"no authors' name for our key {ours!r}")


def _step_size_key(weight_key: str) -> str:
    return weight_key[: -len("weight")] + "step_size"


def map_state_dict(state: dict[str, Tensor], model: nn.Module, arch: ReleasedArch) -> tuple[dict[str, Tensor], dict[str, float]]:
    """The file's tensors under our names, and its stored step sizes per CSC layer (our names).

    Strict: a key of the file that is not used, or a weight of ours that the file lacks, or a
    tensor of the wrong shape, is a :class:`ReleasedCheckpointError` naming them.
    """
    ours = model.state_dict()
    names = {key: their_name(key, arch) for key in ours}
    csc = {name for name, _ in csc_layers(model)}
    step_keys = {f"{layer}.weight": _step_size_key(names[f"{layer}.weight"]) for layer in csc}
    expected = set(names.values()) | set(step_keys.values())
    unused, missing = sorted(set(state) - expected), sorted(expected - set(state))
    if unused or missing:
        def listing(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")

        parts = ([f"keys of the file that {arch.describe()} does not have: {listing(unused)}"] if unused else []) + \
                ([f"keys it needs that the file lacks: {listing(missing)}"] if missing else [])
        raise ReleasedCheckpointError("the file does not match the network its tensors suggest (strict load); " + "; ".join(parts))
    mapped = {}
    for key, target in ours.items():
        tensor = state[names[key]]
        if tensor.shape != target.shape:
            raise ReleasedCheckpointError(f"{names[key]} has shape {list(tensor.shape)}, {arch.describe()} needs {list(target.shape)} (our {key})")
        mapped[key] = tensor
    steps = {key[: -len(".weight")]: float(state[step_key].reshape(-1)[0]) for key, step_key in step_keys.items()}
    return mapped, steps


def load_released(
    path: str | Path, device: str | torch.device = "cpu", *, lam: float = AUTHORS_LAM, n_steps: int = AUTHORS_STEPS,
    image_size: int | tuple[int, int] | None = None,
) -> ResNet:
    """Our model with the weights of the authors' checkpoint ``path``, in eval mode on ``device``.

    ``model.released`` is the :class:`ReleasedArch` read from the file, ``model.released_step_sizes``
    the step sizes the file stores per CSC layer (not used by the forward; see the module's
    docstring). ``lam`` and ``n_steps`` are the authors' (0.1 and 2) unless given. The step sizes
    are settled (:func:`settle_step_sizes`) for ``image_size`` inputs (default: 32 for the CIFAR
    stem, 224 for the ImageNet stem; 0 leaves them to the layers' own 50-iteration estimate).
    """
    state = read_state_dict(path)
    arch = infer_arch(state)
    model = build_released(arch, lam=lam, n_steps=n_steps)
    mapped, steps = map_state_dict(state, model, arch)
    model.load_state_dict(mapped, strict=True)
    model.released, model.released_step_sizes = arch, steps
    model = model.to(device).eval()
    if image_size is None:
        image_size = 32 if arch.stem == "cifar" else 224
    if image_size:
        settle_step_sizes(model, image_size)
    return model


# ---------------------------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def check(path: str | Path) -> dict[str, Any]:
    """What ``--check`` prints: the architecture, the stored atoms' largest deviation from unit
    norm, and per CSC layer our step size against the one the file stores."""
    state = read_state_dict(path)
    arch = infer_arch(state)
    model = build_released(arch)
    mapped, stored = map_state_dict(state, model, arch)
    model.load_state_dict(mapped, strict=True)
    model.eval()
    stored_norms = [torch.linalg.vector_norm(layer.weight, dim=(1, 2, 3)) for _, layer in csc_layers(model)]
    size = 32 if arch.stem == "cifar" else 224
    settle_step_sizes(model, size)
    deviation = max(float((n - 1).abs().max()) for n in stored_norms) if stored_norms else 0.0
    logits = model(torch.full((1, 3, size, size), 0.5))
    layers = {name: {"ours": float(layer.step_size), "stored": stored[name],
                     "relative_difference": abs(float(layer.step_size) - stored[name]) / float(layer.step_size)}
              for name, layer in csc_layers(model)}
    return {"file": str(path), "architecture": arch.describe(), "run": arch.run, "tensors": len(state),
            "parameters": sum(p.numel() for p in model.parameters()), "atom_norm_deviation": deviation,
            "finite_logits": bool(torch.isfinite(logits).all()), "step_sizes": layers}


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sdnet.released", description="Read one of the authors' released checkpoints.")
    p.add_argument("--check", metavar="FILE", required=True, help="print the inferred architecture and how the file loads")
    args = p.parse_args(argv)
    report = check(args.check)
    print(f"{report['file']}: {report['architecture']} (run {report['run']}), {report['tensors']} tensors, "
          f"{report['parameters'] / 1e6:.2f} M parameters; loads strictly, every key used")
    print(f"stored atoms: largest |norm - 1| = {report['atom_norm_deviation']:.2e} (the authors' first batch uses them unnormalised)")
    worst = max(report["step_sizes"].values(), key=lambda r: r["relative_difference"], default=None)
    for name, r in report["step_sizes"].items():
        print(f"  {name:24s} step size ours {r['ours']:.6g}, stored {r['stored']:.6g} ({100 * r['relative_difference']:.3f}%)")
    if worst is not None:
        print(f"largest step-size difference to the stored values: {100 * worst['relative_difference']:.3f}% "
              "(the stored values are from before the last optimiser step)")
    print("logits finite:", report["finite_logits"])


if __name__ == "__main__":
    main()
