"""The embedded synthetic dataset: deterministic, balanced, prefix-stable, image-like."""

import pytest
import torch

from sdnet.data import load_dataset
from sdnet.data.synthetic import BLOCK, CLASSES, NAME, generate, make_synthetic


@pytest.fixture(scope="module")
def sets():
    return make_synthetic(2000, 1000, seed=0)


def test_shapes_names_and_balance(sets):
    train, test = sets
    assert train.images.shape == (2000, 3, 32, 32) and train.images.dtype == torch.uint8 and len(test) == 1000
    assert train.name == NAME and train.classes == CLASSES and len(set(CLASSES)) == 10
    assert torch.bincount(train.labels, minlength=10).tolist() == [200] * 10  # balanced within each block
    assert torch.bincount(test.labels, minlength=10).tolist() == [100] * 10


def test_deterministic_in_the_seed_and_prefix_stable(sets):
    train, test = sets
    again = generate(1500, seed=0, split=0)
    assert torch.equal(again.images, train.images[:1500]) and torch.equal(again.labels, train.labels[:1500])
    assert not torch.equal(generate(BLOCK, seed=1).images, train.images[:BLOCK])
    assert not torch.equal(test.images, train.images[:1000])  # train and test are different draws
    limited, _ = load_dataset("synthetic", limit=300)  # a class-balanced subset, as on every dataset
    assert torch.equal(limited.images, train.subset(train.balanced_indices(300)).images)
    assert limited.labels.bincount().tolist() == [30] * 10


def test_image_like_statistics(sets):
    x = sets[0].images.double() / 255
    assert 0.15 < x.std().item() < 0.35  # colourful, not saturated
    dx = (x[..., 1:] - x[..., :-1]).abs()
    assert dx.mean() > 0.01 and (dx > 0.2).double().mean() > 0.001  # grain and smooth waves, plus real edges
    channels = x.mean((2, 3))
    assert channels.std(0).min() > 0.1  # colours vary between images


def test_classes_differ_in_structure_not_in_colour(sets):
    """The mean colour carries (almost) no label information: the object defines the class."""
    train = sets[0]
    means = torch.stack([train.images[train.labels == k].double().mean((0, 2, 3)) for k in range(10)])
    assert (means.max(0).values - means.min(0).values).max() < 15  # grey levels, out of 255


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="at least one"):
        make_synthetic(0, 10)
    small, _ = make_synthetic(10, 10, size=16)
    assert small.images.shape == (10, 3, 16, 16)
