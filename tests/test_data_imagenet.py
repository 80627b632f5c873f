"""ImageNet folders: the paper's transforms and the loaders, on a tiny tree written by the test."""

import numpy as np
import pytest
import torch
from PIL import Image

from sdnet.data.imagenet import imagenet_loaders, transforms


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """<root>/{train,val}/{n01,n02}/0..3.png, 40x50 random images."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


def test_loaders_give_float_crops_in_unit_range(tree):
    train, val = imagenet_loaders(tree, 4, workers=0, crop=16, resize=20)
    assert train.dataset.classes == ["n01", "n02"] and len(train) == 2  # 8 images, batch 4, drop_last
    x, y = next(iter(train))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64
    xs, ys = zip(*val)
    assert torch.cat(xs).shape == (8, 3, 16, 16) and torch.cat(ys).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # in order


def test_validation_transform_is_resize_then_centre_crop(tree):
    image = Image.open(tree / "val" / "n01" / "0.png")
    out = transforms(train=False, crop=16, resize=20)(image)
    # shorter side 40 -> 20 (the longer 50 -> 25), then the central 16x16
    reference = np.asarray(image.resize((25, 20), Image.BILINEAR), dtype=np.float32)[2:18, 4:20] / 255
    assert out.shape == (3, 16, 16)
    assert np.abs(out.permute(1, 2, 0).numpy() - reference).mean() < 0.05  # antialiasing differs slightly


def test_training_order_is_a_function_of_seed_and_epoch(tree):
    def order(seed, epoch):
        train, _ = imagenet_loaders(tree, 4, workers=0, seed=seed, crop=8, resize=10)
        train.sampler.set_epoch(epoch)
        return list(train.sampler)

    assert order(0, 1) == order(0, 1) and order(0, 1) != order(0, 2)
    assert sorted(order(0, 1)) == list(range(8))


def test_missing_tree_says_how_to_lay_it_out(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train does not exist. ImageNet must be laid out as"):
        imagenet_loaders(tmp_path / "nowhere", 4, workers=0)
