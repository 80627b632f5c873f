"""Model analysis: hidden codes traced through the network and mapped back to the image.

:func:`reconstruct_through_dictionaries` is the paper's visualisation of SDNet-18-All without
shortcuts, whose blocks are CSC -> BatchNorm -> CSC -> BatchNorm with no ReLU and no residual:
every hidden code there describes its layer's input through that layer's dictionary, so it can
be pushed back to the pixels one dictionary at a time (undoing each BatchNorm on the way).
:func:`dictionary_chain` finds, by tracing one forward pass, which CSC layers form such a chain;
:func:`code_sparsity_per_layer` measures how sparse every layer's code is. The figures of these
quantities are in :mod:`sdnet.viz`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sdnet.csc import CSCConv2d, csc_layers, synthesize
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
