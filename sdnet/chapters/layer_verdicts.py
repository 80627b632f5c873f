"""Chapters 1 and 5's rules: when a CSC layer's code counts as sparse, when a hidden layer's
reconstruction still shows its image, and the verdicts they give.

The measurements these rules read are the library's (:mod:`sdnet.analysis`: correlations,
intervals, the zeros a penalty adds; :mod:`sdnet.reconstruction`: error curves against random
dictionaries at equal sparsity); the thresholds and the wording of a verdict live here.
"""

from __future__ import annotations

from torch import Tensor

from sdnet.analysis import contrast_kept, correlation, correlation_with_others, inside_frame, mean_interval
from sdnet.reconstruction import SparsityComparison


# A reconstruction is taken as its own image's when it correlates with that image better than with
# the other images by at least this much, the whole 95% interval of that difference included.
RECOGNISABLE_BY = 0.1


def recognisable(x: Tensor, reconstruction: Tensor, by: float = RECOGNISABLE_BY) -> bool:
    """Whether the 95% interval of ``correlation - correlation_with_others`` lies above ``by``."""
    return mean_interval(correlation(x, reconstruction) - correlation_with_others(x, reconstruction)).low >= by


def layer_reconstruction_table(x: Tensor, reconstructions: list[Tensor], baseline: list[Tensor] | None = None,
                               names: list[str] | None = None, border: int = 0):
    """One row per layer: how much of the images its reconstructions keep (pandas DataFrame),
    measured inside a frame of ``border`` pixels.

    Why the frame: the transposed convolutions' zero padding leaves a bright frame on a deep
    reconstruction that is the same for every image; once the image-dependent part has faded, the
    frame is most of a reconstruction's spread, and a correlation over the whole image would
    measure the frame, not the code.

    Columns: ``correlation`` with its own image (mean over images), ``with other images`` (the
    baseline of :func:`correlation_with_others`), ``difference`` with its 95% interval
    (``difference low``, ``difference high``), ``recognisable`` (:func:`recognisable`),
    ``contrast kept`` (median of :func:`sdnet.analysis.contrast_kept`: how faint the reconstruction is),
    ``whole image`` (the correlation with the frame included) and, with ``baseline`` (the same
    layers' reconstructions by a network that was not trained), ``untrained network`` (its
    correlation with its own image)."""
    import pandas as pd

    xi = inside_frame(x, border)
    rows = []
    for l, r in enumerate(reconstructions):
        ri = inside_frame(r, border)
        own, others = correlation(xi, ri), correlation_with_others(xi, ri)
        gap = mean_interval(own - others)
        row = {"layer": names[l] if names else f"L{l}", "correlation": own.mean().item(), "with other images": others.mean().item(),
               "difference": gap.mean, "difference low": gap.low, "difference high": gap.high, "recognisable": gap.low >= RECOGNISABLE_BY,
               "contrast kept": contrast_kept(xi, ri).median().item(), "whole image": correlation(x, r).mean().item()}
        if baseline is not None:
            row["untrained network"] = correlation(xi, inside_frame(baseline[l], border)).mean().item()
        rows.append(row)
    return pd.DataFrame(rows)


def recognisable_verdict(table, border: int = 0) -> str:
    """The verdict on "hidden codes keep the image recognisable" from :func:`layer_reconstruction_table`
    (measured inside a frame of ``border`` pixels, which the verdict states): holds when every
    layer's reconstruction is recognisable, weak when only the first layers' are (it says up to
    which), does not hold when not even the stem's is."""
    where = f" inside a {border}-pixel frame" if border else ""
    flags = table["recognisable"].tolist()
    last = len(flags) - 1
    upto = flags.index(False) - 1 if False in flags else last
    if upto == last:
        return (f"holds: the reconstructions of every layer (0-{last}) correlate with their own image{where} better than "
                f"with other images by at least {RECOGNISABLE_BY:g} (95% interval)")
    lost = table.iloc[upto + 1]
    why = (f"layer {upto + 1}'s reconstructions correlate with their own image {lost['correlation']:.3f}, "
           f"with other images {lost['with other images']:.3f}")
    if upto < 0:
        return f"does not hold: not even the stem's reconstruction is recognisable; {why}"
    again = [str(l) for l in range(upto + 2, last + 1) if flags[l]]
    deeper = f"; deeper layers {', '.join(again)} are recognisable again" if again else "; no deeper layer's is recognisable"
    return (f"weak: recognisable (correlation with their own image{where} above that with other images by at least "
            f"{RECOGNISABLE_BY:g}, 95% interval) up to layer {upto} of {last} only; {why}{deeper}")


# The l1 penalty "makes a code sparse" where it adds at least this fraction of zeros to the floor
# that non-negativity alone gives (lambda 0).
SPARSER_BY = 0.05


def sparsity_verdict(networks: dict[str, dict[str, dict[str, float]]]) -> str:
    """The verdict on "the l1 penalty makes every CSC layer's code sparse", from
    :func:`sdnet.analysis.sparsity_on_own_input` of each network (by name): the zeros the penalty adds to the floor
    of non-negativity alone, on each layer's own input. Holds when it adds at least
    :data:`SPARSER_BY` in every layer of every network, weak when it adds some zeros everywhere but
    less than that somewhere, does not hold when some layer's code is no sparser than at lambda 0."""
    added = [s["added"] for layers in networks.values() for s in layers.values()]
    mean = sum(added) / len(added)
    numbers = (f"the penalty adds {100 * min(added):.1f} to {100 * max(added):.1f} points of zeros beyond non-negativity "
               f"(mean {100 * mean:.1f}; {len(added)} CSC layers of {len(networks)} networks)")
    if all(a >= SPARSER_BY for a in added):
        return f"holds: {numbers}, at least {100 * SPARSER_BY:.0f} in every layer"
    if all(a > 0 for a in added):
        below = sum(a < SPARSER_BY for a in added)
        return f"weak: {numbers}; less than {100 * SPARSER_BY:.0f} in {below} of {len(added)} layers"
    return f"does not hold: {numbers}; some layer's code is no sparser than at lambda 0"


def reconstruction_verdict(two_steps: SparsityComparison, converged: SparsityComparison, budget: float,
                           zeros: float, floor: float) -> str:
    """Chapter 1's verdict on "two unrolled steps give a sparse code that reconstructs the input",
    for the trained stems: *reconstructs* means a lower :func:`sdnet.reconstruction.scaled_error` than random
    dictionaries at the same fraction of zeros (the whole interval below 0); *sparse* means the
    penalty adds at least :data:`SPARSER_BY` to the zeros at lambda 0 (``floor``),
    chapter 5's rule. Holds when both do, weak when one does, does not hold when neither does; the
    numbers also say how much of the error is the two-step budget (``budget``, :func:`sdnet.reconstruction.two_step_share`)."""
    d = two_steps.difference
    better, sparse = d.high < 0, zeros - floor >= SPARSER_BY
    numbers = (f"at {100 * two_steps.target:.0f}% zeros the trained stems' 2-step codes leave {two_steps.ours_mean:.3f} of the "
               f"variance unexplained after the best scaling against {two_steps.random_mean:.3f} for random dictionaries "
               f"(difference {d.mean:+.3f}, 95% interval {d.low:+.3f} to {d.high:+.3f}); converged codes {converged.ours_mean:.3f} "
               f"against {converged.random_mean:.3f}: {100 * budget:.0f}% of the 2-step error is the two-step budget; "
               f"the penalty adds {100 * (zeros - floor):.1f} points of zeros to the {100 * floor:.0f}% of non-negativity alone")
    if better and sparse:
        return f"holds: {numbers}"
    if better:
        return f"weak: {numbers}; it reconstructs better than random dictionaries, but its zeros come from non-negativity"
    if sparse:
        return f"weak: {numbers}; sparse, but no better than random dictionaries at equal sparsity"
    return f"does not hold: {numbers}; no better than random dictionaries, and its zeros come from non-negativity"
