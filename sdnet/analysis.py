"""Model analysis: hidden codes traced through the network and mapped back to the image.

:func:`reconstruct_through_dictionaries` is the paper's visualisation of SDNet-18-All without
shortcuts, whose blocks are CSC -> BatchNorm -> CSC -> BatchNorm with no ReLU and no residual:
every hidden code there describes its layer's input through that layer's dictionary, so it can
be pushed back to the pixels one dictionary at a time (undoing each BatchNorm on the way).
:func:`dictionary_chain` finds, by tracing one forward pass, which CSC layers form such a chain;
:func:`code_sparsity_per_layer` measures how sparse every layer's code is, and
:func:`sparsity_against_floor` how much of that the l1 penalty adds to non-negativity alone.

How much of an image a reconstruction keeps, measured the same way in chapters 1 and 5 whatever
the scale of the inputs (normalised in chapter 1, pixel units in chapter 5):
:func:`unexplained_variance` (1 for the flat image of the image's mean colour, 0 for the image
itself) and :func:`correlation` (0 for any flat image); :func:`correlation_with_others` is the
baseline a reconstruction must beat to be *this* image's (what it shares with any image: a frame,
a bright centre), and :func:`mean_interval` puts a 95% interval on a mean over images. The figures
of these quantities are in :mod:`sdnet.viz`.
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
def sparsity_against_floor(model: nn.Module, x: Tensor, lam: float) -> dict[str, dict[str, float]]:
    """Per CSC layer, the fraction of zero code entries at lambda 0 (the floor: a non-negative code
    is zero wherever its unthresholded value is negative, with no l1 penalty at all), at ``lam``
    (e.g. the training lambda), and what the penalty adds (``added = at_lam - floor``). The
    floor is measured with every layer at lambda 0, as the model would run at that lambda."""
    with csc_lambda(model, 0.0):
        floor = code_sparsity_per_layer(model, x)
    with csc_lambda(model, lam):
        at_lam = code_sparsity_per_layer(model, x)
    return {name: {"floor": floor[name], "at_lam": at_lam[name], "added": at_lam[name] - floor[name]} for name in floor}


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


# A reconstruction is taken as its own image's when it correlates with that image better than with
# the other images by at least this much, the whole 95% interval of that difference included.
RECOGNISABLE_BY = 0.1


def recognisable(x: Tensor, reconstruction: Tensor, by: float = RECOGNISABLE_BY) -> bool:
    """Whether the 95% interval of ``correlation - correlation_with_others`` lies above ``by``."""
    return mean_interval(correlation(x, reconstruction) - correlation_with_others(x, reconstruction)).low >= by


# ---------------------------------------------------------------------------------------------
# Chapter 5's table and verdicts
# ---------------------------------------------------------------------------------------------


def layer_reconstruction_table(x: Tensor, reconstructions: list[Tensor], baseline: list[Tensor] | None = None,
                               names: list[str] | None = None):
    """One row per layer: how much of the images its reconstructions keep (pandas DataFrame).

    Columns: ``correlation`` with its own image (mean over images), ``with other images`` (the
    baseline of :func:`correlation_with_others`), ``difference`` with its 95% interval
    (``difference low``, ``difference high``), ``recognisable`` (:func:`recognisable`) and, with
    ``baseline`` (the same layers' reconstructions by a network that was not trained),
    ``untrained network`` (its correlation with its own image)."""
    import pandas as pd

    rows = []
    for l, r in enumerate(reconstructions):
        own, others = correlation(x, r), correlation_with_others(x, r)
        gap = mean_interval(own - others)
        row = {"layer": names[l] if names else f"L{l}", "correlation": own.mean().item(), "with other images": others.mean().item(),
               "difference": gap.mean, "difference low": gap.low, "difference high": gap.high, "recognisable": gap.low >= RECOGNISABLE_BY}
        if baseline is not None:
            row["untrained network"] = correlation(x, baseline[l]).mean().item()
        rows.append(row)
    return pd.DataFrame(rows)


def recognisable_verdict(table) -> str:
    """The verdict on "hidden codes keep the image recognisable" from :func:`layer_reconstruction_table`:
    holds when every layer's reconstruction is recognisable, weak when only the first layers' are
    (it says up to which), does not hold when not even the stem's is."""
    flags = table["recognisable"].tolist()
    last = len(flags) - 1
    upto = flags.index(False) - 1 if False in flags else last
    if upto == last:
        return (f"holds: the reconstructions of every layer (0-{last}) correlate with their own image better than "
                f"with other images by at least {RECOGNISABLE_BY:g} (95% interval)")
    lost = table.iloc[upto + 1]
    why = (f"layer {upto + 1}'s reconstructions correlate with their own image {lost['correlation']:.3f}, "
           f"with other images {lost['with other images']:.3f}")
    if upto < 0:
        return f"does not hold: not even the stem's reconstruction is recognisable; {why}"
    again = [str(l) for l in range(upto + 2, last + 1) if flags[l]]
    deeper = f"; deeper layers {', '.join(again)} are recognisable again" if again else "; no deeper layer's is recognisable"
    return (f"weak: recognisable (correlation with their own image above that with other images by at least "
            f"{RECOGNISABLE_BY:g}, 95% interval) up to layer {upto} of {last} only; {why}{deeper}")


def reconstruction_verdict(learned: Tensor, random: Tensor, sparsity: float, floor: float) -> str:
    """Chapter 1's verdict on "a sparse code that reconstructs the input": per image unexplained
    variance (:func:`unexplained_variance`) of the learned dictionary's code and of a random
    dictionary's at the same lambda and steps; the code's fraction of zeros and its floor at
    lambda 0. Reconstructs: below the image's mean colour (1) and below the random dictionary,
    both with 95% intervals; sparse: at least :data:`SPARSER_BY` more zeros than the floor."""
    ours, gain = mean_interval(learned), mean_interval(learned - random)
    numbers = (f"{100 * ours.mean:.0f}% of the images' variance left unexplained (95% interval {100 * ours.low:.0f}-"
               f"{100 * ours.high:.0f}%), against 100% for the image's mean colour and {100 * random.mean().item():.0f}% "
               f"for a random dictionary; {100 * sparsity:.0f}% zeros, {100 * floor:.0f}% at lambda 0")
    if ours.high >= 1:
        return f"does not hold: {numbers}"
    if gain.high >= 0:
        return f"weak: {numbers}; no better than a random dictionary"
    if sparsity - floor < SPARSER_BY:
        return f"weak: {numbers}; it reconstructs, but its zeros come from non-negativity, not from the penalty"
    return f"holds: {numbers}"


# The l1 penalty "makes a code sparse" where it adds at least this fraction of zeros to the floor
# that non-negativity alone gives (lambda 0).
SPARSER_BY = 0.05


def sparsity_verdict(sparsity: dict[str, dict[str, float]], lam: float) -> str:
    """The verdict on "every CSC layer's code is sparse" from :func:`sparsity_against_floor`: the
    zeros at ``lam`` judged against the floor at lambda 0, layer by layer."""
    added = [s["added"] for s in sparsity.values()]
    at_lam = [s["at_lam"] for s in sparsity.values()]
    floor = [s["floor"] for s in sparsity.values()]
    numbers = (f"{100 * min(at_lam):.0f}% to {100 * max(at_lam):.0f}% zeros at lambda {lam:g}, "
               f"{100 * min(floor):.0f}% to {100 * max(floor):.0f}% at lambda 0 (non-negativity alone); "
               f"the penalty adds {100 * min(added):.1f} to {100 * max(added):.1f} points")
    if all(a >= SPARSER_BY for a in added):
        return f"holds: {numbers}, at least {100 * SPARSER_BY:.0f} in every layer"
    if all(a > 0 for a in added):
        below = sum(a < SPARSER_BY for a in added)
        return f"weak: {numbers}; in {below} of {len(added)} layers less than {100 * SPARSER_BY:.0f}: most zeros come from non-negativity"
    return f"does not hold: {numbers}; some layer is no sparser than at lambda 0"
