"""Model analysis: hidden codes traced through the network and mapped back to the image.

:func:`reconstruct_through_dictionaries` is the paper's visualisation of SDNet-18-All without
shortcuts, whose blocks are CSC -> BatchNorm -> CSC -> BatchNorm with no ReLU and no residual:
every hidden code there describes its layer's input through that layer's dictionary, so it can
be pushed back to the pixels one dictionary at a time (undoing each BatchNorm on the way).
:func:`dictionary_chain` finds, by tracing one forward pass, which CSC layers form such a chain;
:func:`code_sparsity_per_layer` measures how sparse every layer's code is,
:func:`sparsity_on_own_input` how much of that the l1 penalty adds to non-negativity alone (each
layer on the very input it reads), and :func:`relu_zeros_after_convs` the same depth's zeros in a
ReLU network, the reference.

How much of an image a reconstruction keeps, measured the same way in chapters 1 and 5 whatever
the scale of the inputs (normalised in chapter 1, pixel units in chapter 5):
:func:`unexplained_variance` (1 for the flat image of the image's mean colour, 0 for the image
itself) and :func:`correlation` (0 for any flat image); :func:`correlation_with_others` is the
baseline a reconstruction must beat to be *this* image's (what it shares with any image: a frame,
a bright centre), and :func:`mean_interval` puts a 95% interval on a mean over images;
:func:`contrast_kept` says how faint a reconstruction is. Chapter 1's comparison of dictionaries at
equal sparsity is in :mod:`sdnet.reconstruction`; the figures are in :mod:`sdnet.chapters.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sdnet.csc import CSCConv2d, csc_lambda, csc_layers, synthesize
from sdnet.evaluate import evaluating
from sdnet.models import Normalize

# ---------------------------------------------------------------------------------------------
# Hidden codes back to the image, through the dictionaries
# ---------------------------------------------------------------------------------------------


@dataclass
class _Call:
    """One call of a leaf module: what it read and wrote, with the tensors' in-place versions."""

    module: nn.Module | None
    input: Tensor
    input_version: int
    output: Tensor | None = None
    output_version: int = -1

    def feeds(self, other: _Call) -> bool:
        """Whether ``other`` read exactly this call's output: the same tensor object, not
        modified in place in between (a functional op would make a new tensor, an in-place one
        would bump its version)."""
        return other.input is self.output and other.input_version == self.output_version


def _trace(model: nn.Module, x: Tensor) -> list[_Call]:
    """The calls of ``model``'s leaf modules on ``x``, in order, without ``nn.Identity`` (which
    hands its input through unchanged: a block's ReLU when it has no shortcut)."""
    calls: list[_Call] = []

    def before(module, inputs):
        calls.append(_Call(module, inputs[0], inputs[0]._version))

    def after(module, inputs, output):
        calls[-1].output, calls[-1].output_version = output, output._version

    leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]
    hooks = [h for m in leaves for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        with torch.no_grad(), evaluating(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return calls


@dataclass(frozen=True)
class DictionaryLink:
    """A CSC layer whose input is the previous link's code through one BatchNorm (or the image)."""

    name: str
    layer: CSCConv2d
    input_size: tuple[int, int]
    code: Tensor
    batchnorm: nn.BatchNorm2d | None  # the BatchNorm right after this layer, feeding the next link


def dictionary_chain(model: nn.Module, x: Tensor) -> tuple[list[DictionaryLink], Normalize | None]:
    """Run ``model`` on ``x`` (eval mode) and return the CSC layers that form an exact chain from
    the image, with their codes, and the input normalisation in front of them (if any).

    The chain starts at the first CSC layer, which must read the (normalised) image, and goes on
    while the next module calls are exactly one BatchNorm and then a CSC layer reading that
    BatchNorm's output. A ReLU, a residual addition or a pooling in between ends it.
    """
    calls = _trace(model, x)
    names = {id(m): n for n, m in model.named_modules()}
    normalize = calls[0].module if calls and isinstance(calls[0].module, Normalize) else None
    source = calls[0] if normalize is not None else _Call(None, x, x._version, x, x._version)
    rest = calls[1:] if normalize is not None else calls
    links: list[DictionaryLink] = []
    i = 0
    while i < len(rest) and isinstance(rest[i].module, CSCConv2d) and source.feeds(rest[i]):
        csc = rest[i]
        after = rest[i + 1] if i + 1 < len(rest) else None
        bn = after.module if after is not None and isinstance(after.module, nn.BatchNorm2d) and csc.feeds(after) else None
        size = (csc.input.shape[-2], csc.input.shape[-1])
        links.append(DictionaryLink(names[id(csc.module)], csc.module, size, csc.output, bn))
        if bn is None:
            break
        source, i = after, i + 2
    return links, normalize


def invert_batchnorm(bn: nn.BatchNorm2d, y: Tensor) -> Tensor:
    """The input of an eval-mode BatchNorm from its output:
    ``x = (y - beta) / gamma * sqrt(running_var + eps) + running_mean``."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("cannot invert a BatchNorm without running statistics (track_running_stats=False)")
    shape = (1, -1, 1, 1)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = torch.sqrt(bn.running_var + bn.eps) / gamma
    return (y - beta.view(shape)) * scale.view(shape) + bn.running_mean.view(shape)


@torch.no_grad()
def reconstruct_through_dictionaries(model: nn.Module, x: Tensor, upto: int | None = None) -> list[Tensor]:
    """Each CSC layer's code mapped back to image space, layer by layer, for layers ``0..upto``.

    For layer ``l`` (0 = the stem): start from its code ``z_l``; apply its dictionary,
    ``A_l(z_l)`` (a transposed convolution with the output padding of the layer's input size),
    which approximates the layer's input; undo the BatchNorm that produced that input (with its
    running statistics); repeat with layer ``l - 1`` down to the stem; finally undo the input
    normalisation. Returns one ``[N, 3, H, W]`` batch per layer, in pixel units (roughly [0, 1];
    not clipped). Layer 0's result is the stem's own ``reconstruction()`` in pixel units.

    This is exact only when every layer's input is the previous code through BatchNorm alone:
    SDNet-18/34-All without shortcuts and with the CIFAR stem (``build(..., shortcut=False)``);
    asking for a layer beyond such a chain is an error.
    """
    n_csc = len(csc_layers(model))
    if n_csc == 0:
        raise ValueError("the model has no CSC layer")
    last = n_csc - 1 if upto is None else upto
    if not 0 <= last < n_csc:
        raise ValueError(f"upto must be in 0..{n_csc - 1} (the model's CSC layers), got {upto}")
    links, normalize = dictionary_chain(model, x)
    if last >= len(links):
        blocked = csc_layers(model)[len(links)][0]
        raise ValueError(
            f"CSC layer {blocked!r} does not read the previous code through a BatchNorm alone (a ReLU, "
            "residual connection or pooling sits in between), so its code cannot be mapped back through "
            f"the dictionaries; only layers 0..{len(links) - 1} can. Use an SDNet-All without shortcuts "
            "and with the CIFAR stem: build(..., shortcut=False)"
        )
    images = []
    for l in range(last + 1):
        r = links[l].code
        for j in range(l, -1, -1):
            layer = links[j].layer
            padding = layer.output_padding(links[j].input_size)
            r = synthesize(r.to(layer.weight.dtype), layer.weight, layer.stride, layer.padding, padding)
            if j > 0:
                r = invert_batchnorm(links[j - 1].batchnorm, r)
        images.append(r * normalize.std + normalize.mean if normalize is not None else r)
    return images


# ---------------------------------------------------------------------------------------------
# Sparsity of the codes
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def code_sparsity_per_layer(model: nn.Module, x: Tensor) -> dict[str, float]:
    """Mean fraction of exactly-zero code entries of every CSC layer on the batch ``x``."""
    with evaluating(model):
        model(x)
    return {name: layer.sparsity().mean().item() for name, layer in csc_layers(model)}


@torch.no_grad()
def csc_inputs(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """What every CSC layer of ``model`` reads when the model runs on ``x`` (eval mode, lambdas as
    they are set), by layer name."""
    seen: dict[str, Tensor] = {}
    hooks = [layer.register_forward_pre_hook(lambda _m, inputs, name=name: seen.__setitem__(name, inputs[0].detach().clone()))
             for name, layer in csc_layers(model)]
    try:
        with evaluating(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


@torch.no_grad()
def sparsity_on_own_input(model: nn.Module, x: Tensor, lam: float) -> dict[str, dict[str, float]]:
    """Per CSC layer, on the very input it reads when the whole model runs at its own lambdas (the
    training lambda), its code's fraction of zeros at lambda 0 (``floor``: a non-negative code is
    zero wherever its unthresholded value is negative, with no l1 penalty at all) and at ``lam``
    (``at_lam``), what the penalty adds (``added``), and the threshold the penalty sets in the
    first step, ``lam * t`` (``threshold``) and relative to the spread of what it thresholds,
    ``lam * t / std(t A^T x)`` (``relative threshold``).

    Only that layer's lambda changes: setting every layer to lambda 0 at once would feed each
    deeper layer a different input, and mix the penalty's effect with the change of input."""
    rows = {}
    inputs = csc_inputs(model, x)
    with evaluating(model):
        for name, layer in csc_layers(model):
            zeros = {}
            for value in (0.0, lam):
                with csc_lambda(layer, value):
                    layer(inputs[name])
                    zeros[value] = layer.sparsity().mean().item()
            t = layer.step_size.item()
            first = nn.functional.conv2d(inputs[name].to(layer.weight.dtype), layer.weight, stride=layer.stride, padding=layer.padding)
            rows[name] = {"floor": zeros[0.0], "at_lam": zeros[lam], "added": zeros[lam] - zeros[0.0],
                          "threshold": lam * t, "relative threshold": lam / first.std().item()}
    return rows


@torch.no_grad()
def relu_zeros_after_convs(model: nn.Module, x: Tensor) -> dict[str, float]:
    """For a ResNet: per 3x3 convolution, in forward order, the fraction of zeros of the first ReLU
    output after it (BatchNorm, and for a block's second conv the residual sum, in between): the
    sparsity of a ReLU network's activations at the depth of each CSC layer of its SDNet-All twin
    (whose codes replace exactly these convolutions). A 3x3 convolution with no ReLU after it
    before the next one is left out."""
    events: list[tuple[str, str, float]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            hooks.append(module.register_forward_hook(lambda _m, _i, _o, name=name: events.append(("conv", name, 0.0))))
        elif isinstance(module, nn.ReLU):
            hooks.append(module.register_forward_hook(lambda _m, _i, out: events.append(("relu", "", (out == 0).float().mean().item()))))
    try:
        with evaluating(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    zeros, pending = {}, None
    for kind, name, value in events:
        if kind == "conv":
            pending = name
        elif pending is not None:
            zeros[pending], pending = value, None
    return zeros


# ---------------------------------------------------------------------------------------------
# How much of an image a reconstruction keeps
# ---------------------------------------------------------------------------------------------


def _centred(images: Tensor) -> Tensor:
    """Each image minus its mean colour (per image and channel), flattened: ``[N, C*H*W]``."""
    images = images.detach().float()
    return (images - images.mean(dim=(-2, -1), keepdim=True)).flatten(1)


def unexplained_variance(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Per image, ``||x - x_hat||^2 / ||x - mean colour of x||^2``, shape [N].

    The flat image of the image's own mean colour scores exactly 1 (the baseline: it keeps nothing
    of the image's structure), the image itself 0; a flat image of another colour scores more
    than 1. Unlike ``||x - x_hat||^2 / ||x||^2`` it does not depend on the offset of the inputs
    (pixel values in [0, 1] or normalised by the dataset's mean and std), so it reads the same in
    chapters 1 and 5."""
    x, reconstruction = x.detach().float(), reconstruction.detach().float()
    error = (x - reconstruction).flatten(1).pow(2).sum(1)
    return error / _centred(x).pow(2).sum(1).clamp_min(1e-12)


def correlation(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Per image, the correlation of the reconstruction with its image (over pixels and channels,
    each centred on its own mean colour), shape [N]: 1 for the image up to a positive scale and a
    colour offset, 0 for any flat image."""
    return torch.nn.functional.cosine_similarity(_centred(x), _centred(reconstruction), dim=1, eps=1e-12)


def correlation_with_others(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Per reconstruction, its mean correlation (as :func:`correlation`) with the *other* images of
    the batch, shape [N]. A reconstruction that shows its own image scores higher with it than with
    the others; one that shows what every reconstruction shows (a frame, a bright centre) scores
    the same with all of them. Needs at least two images."""
    if len(x) < 2:
        raise ValueError("correlation_with_others needs at least two images")
    a = torch.nn.functional.normalize(_centred(x), dim=1, eps=1e-12)
    b = torch.nn.functional.normalize(_centred(reconstruction), dim=1, eps=1e-12)
    every = b @ a.T  # [reconstruction, image]
    return (every.sum(1) - every.diagonal()) / (len(x) - 1)


@dataclass(frozen=True)
class Interval:
    """A mean over images with its 95% interval (normal approximation: mean ± 1.96 standard errors)."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def mean_interval(values: Tensor) -> Interval:
    """:class:`Interval` of the mean of ``values`` (one per image; at least two)."""
    values = values.detach().double().flatten()
    if len(values) < 2:
        raise ValueError("an interval needs at least two values")
    mean, se = values.mean().item(), (values.std(unbiased=True) / len(values) ** 0.5).item()
    return Interval(mean, mean - 1.96 * se, mean + 1.96 * se)


# ---------------------------------------------------------------------------------------------
# Reconstructions inside a frame (chapter 5)
# ---------------------------------------------------------------------------------------------


def inside_frame(images: Tensor, border: int) -> Tensor:
    """``images`` (``[..., H, W]``) without a frame of ``border`` pixels (unchanged for 0).

    The transposed convolutions' zero padding leaves a bright frame on reconstructions from deep
    codes; statistics taken inside it describe the interior rather than the frame.
    """
    h, w = images.shape[-2:]
    return images[..., border:h - border, border:w - border]


def contrast_kept(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Per image, the spread of the reconstruction around its mean colour relative to the image's:
    ``||x_hat - mean colour of x_hat|| / ||x - mean colour of x||`` (1: same contrast; 0: flat)."""
    return _centred(reconstruction).norm(dim=1) / _centred(x).norm(dim=1).clamp_min(1e-12)
