"""The device loader: exact crops and flips, their probabilities, determinism, DDP sharding; ImageSet."""

import pytest
import torch

from sdnet.data import DeviceLoader, ImageSet
from sdnet.data.loader import PAD, benchmark, random_crop_flip


def numbered(n: int = 64, size: int = 8) -> ImageSet:
    """Image i has pixel (r, c) = 16 r + c + 1 in every channel (0 is left for the padding), and
    label i, so every crop can be checked exactly."""
    rows = torch.arange(size).view(1, 1, size, 1)
    cols = torch.arange(size).view(1, 1, 1, size)
    images = (rows * 16 + cols + 1).expand(n, 3, size, size).to(torch.uint8)
    return ImageSet(images.contiguous(), torch.arange(n), ["c"], "numbered")


def test_random_crop_flip_is_an_exact_shifted_window():
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    offsets = torch.tensor([[0, 0], [4, 4], [8, 8], [2, 7], [4, 4]])
    flips = torch.tensor([False, False, False, True, True])
    out = random_crop_flip(x, offsets, flips, pad=4)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for b, (r, c) in enumerate(offsets.tolist()):
        window = padded[b, :, r : r + 8, c : c + 8]
        assert torch.equal(out[b], window.flip(-1) if flips[b] else window)
    assert torch.equal(out[1], x[1]) and torch.equal(out[4], x[4].flip(-1))  # centre: identity / pure flip
    assert out.is_contiguous() and out.dtype == torch.uint8


def decode_numbered(batch: torch.Tensor, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Read back, from the pixels of augmented ``numbered`` images, each crop's corner (in padded
    coordinates) and whether it was flipped. A crop keeps at least a 4x4 corner of the source, so
    every output holds a run of source pixels whose direction tells the flip."""
    pixels = (batch[:, 0] * 255).round().long()
    offsets, flips = [], []
    for img in pixels:
        i, j = (img > 0).nonzero()[0].tolist()  # the first source pixel, row-major
        source_row, source_col = divmod(img[i, j].item() - 1, 16)
        flipped = img[i, j + 1].item() < img[i, j].item()  # columns read backwards
        column = size - 1 - j if flipped else j
        offsets.append([source_row - i + PAD, source_col - column + PAD])
        flips.append(flipped)
    return torch.tensor(offsets), torch.tensor(flips)


def test_crop_offsets_are_uniform_over_the_81_positions_and_flips_have_rate_one_half():
    data = numbered(20_000)
    _, offsets, flips = DeviceLoader(data, 1000, train=True, seed=3).plan()
    assert offsets.min() == 0 and offsets.max() == 2 * PAD
    counts = torch.bincount(offsets[:, 0] * 9 + offsets[:, 1], minlength=81).double()
    expected = len(offsets) / 81
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 140  # 80 degrees of freedom: p < 1e-4 above 140
    assert flips.double().mean().item() == pytest.approx(0.5, abs=0.015)  # 3 sigma = 0.011
    # the pixels really went through the planned crops and flips
    loader = DeviceLoader(data.subset(2000), 2000, train=True, seed=3)
    order, offsets, flips = loader.plan()
    x, y = next(iter(loader))
    assert torch.equal(y, order)
    seen_offsets, seen_flips = decode_numbered(x)
    assert torch.equal(seen_offsets, offsets) and torch.equal(seen_flips, flips)


def test_epochs_are_a_pure_function_of_seed_and_epoch():
    data = numbered(300)

    def epoch_batches(loader, epoch):
        loader.set_epoch(epoch)
        return [(x.clone(), y.clone()) for x, y in loader]

    a, b = DeviceLoader(data, 64, train=True, seed=5), DeviceLoader(data, 64, train=True, seed=5)
    first = epoch_batches(a, 0)
    epoch_batches(a, 1), epoch_batches(a, 2)
    resumed = epoch_batches(b, 2)  # a fresh loader jumps straight to epoch 2 ...
    again = epoch_batches(a, 2)  # ... and sees what the one that ran epochs 0, 1 sees
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(resumed, again))
    assert not torch.equal(first[0][1], again[0][1])  # a new epoch reshuffles
    other_seed = epoch_batches(DeviceLoader(data, 64, train=True, seed=6), 0)
    assert not torch.equal(first[0][1], other_seed[0][1])
    state = torch.random.get_rng_state()
    epoch_batches(a, 3)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is never used


def test_train_batches_are_float_in_unit_range_and_drop_the_last():
    data = numbered(130)
    loader = DeviceLoader(data, 32, train=True, channels_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 4  # 130 // 32, incomplete batch dropped
    x, y = batches[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (32, 3, 8, 8)
    assert 0 <= x.min() and x.max() <= 1 and x.is_contiguous(memory_format=torch.channels_last)
    assert len(DeviceLoader(data, 32, train=True, drop_last=False)) == 5


def test_eval_loader_is_in_order_complete_and_unaugmented():
    data = numbered(10)
    loader = DeviceLoader(data, 4, train=False)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(10))
    assert torch.equal(torch.cat([x for x, _ in batches]), data.images.float() / 255)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_shards_cover_every_index_once_per_epoch(world_size):
    data = numbered(103)
    for epoch in (0, 1):
        loaders = [DeviceLoader(data, 8, train=True, rank=r, world_size=world_size) for r in range(world_size)]
        for loader in loaders:
            loader.set_epoch(epoch)
        seen = [torch.cat([y for _, y in loader]) for loader in loaders]
        assert len({len(loader) for loader in loaders}) == 1  # every rank takes the same number of steps
        everything = torch.cat(seen)
        assert len(everything.unique()) == len(everything)  # no index twice
        # every index of the epoch's order is somewhere: only the drop_last tail and the
        # remainder that cannot be shared equally are left out
        plans = torch.cat([loader.plan()[0] for loader in loaders])
        assert len(plans) == (103 // world_size) * world_size and len(plans.unique()) == len(plans)
    evaluation = [DeviceLoader(data, 8, train=False, rank=r, world_size=world_size) for r in range(world_size)]
    labels = torch.cat([y for loader in evaluation for _, y in loader])
    assert torch.equal(labels.sort().values, torch.arange(103))  # evaluation: each image exactly once


def test_an_image_is_augmented_the_same_whatever_the_world_size():
    data = numbered(64)
    single_order, single_offsets, single_flips = DeviceLoader(data, 8, train=True, seed=1).plan()
    rank1_order, rank1_offsets, rank1_flips = DeviceLoader(data, 8, train=True, seed=1, rank=1, world_size=2).plan()
    position = {i: k for k, i in enumerate(single_order.tolist())}
    for i, offset, flip in zip(rank1_order.tolist(), rank1_offsets, rank1_flips):
        assert torch.equal(offset, single_offsets[position[i]]) and flip == single_flips[position[i]]


def test_progressive_resizing_downscales_the_same_crops_and_only_in_training():
    data = ImageSet(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8), torch.arange(16), ["c"], "random")
    loader = DeviceLoader(data, 8, train=True, seed=3)
    loader.set_epoch(2)
    full = [x for x, _ in loader]
    loader.set_epoch(2, size=16)
    small = [x for x, _ in loader]
    assert [tuple(x.shape) for x in small] == [(8, 3, 16, 16)] * 2
    for a, b in zip(full, small):  # the same crops and flips, then an antialiased downscaling
        torch.testing.assert_close(b, torch.nn.functional.interpolate(a, size=(16, 16), mode="bilinear", antialias=True), atol=1e-6, rtol=0)
        torch.testing.assert_close(b.mean((2, 3)), a.mean((2, 3)), atol=0.02, rtol=0)  # it keeps each image's mean colour
    evaluation = DeviceLoader(data, 8, train=False)
    evaluation.set_epoch(0, size=16)
    assert next(iter(evaluation))[0].shape[-1] == 32  # test images are never resized
    with pytest.raises(ValueError, match="size"):
        loader.set_epoch(0, size=0)


def test_bad_arguments_are_refused():
    data = numbered(10)
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(data, 0, train=True)
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(data, 2, train=True, rank=2, world_size=2)
    with pytest.raises(ValueError, match="no full batch"):
        DeviceLoader(data, 16, train=True)


def test_benchmark_runs():
    assert benchmark("cpu", n=512, batch_size=128, epochs=1) > 0


def test_imageset_subset_and_validation():
    data = numbered(10)
    assert len(data.subset(3)) == 3 and len(data.subset(50)) == 10
    picked = data.subset([7, 2])
    assert picked.labels.tolist() == [7, 2] and picked.name == data.name and picked.classes == data.classes
    assert torch.equal(data.subset(torch.tensor([7, 2])).images, picked.images)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(data.images.float(), data.labels, ["c"], "x")
    with pytest.raises(ValueError, match="labels must have shape"):
        ImageSet(data.images, data.labels[:3], ["c"], "x")


def test_a_balanced_subset_of_a_split_sorted_by_class():
    """The JPEG copy is stored class by class: its first 4000 images are 4000 airplanes."""
    labels = torch.arange(10).repeat_interleave(50)  # sorted by class, 50 each
    data = ImageSet(torch.zeros(500, 3, 2, 2, dtype=torch.uint8), labels, [str(c) for c in range(10)], "sorted")
    assert data.subset(40).labels.bincount(minlength=10).tolist() == [40] + [0] * 9
    subset = data.balanced(43)
    assert subset.labels.bincount(minlength=10).tolist() == [5, 5, 5] + [4] * 7
    uneven = ImageSet(torch.zeros(12, 3, 2, 2, dtype=torch.uint8), torch.tensor([0] * 10 + [1] * 2), ["a", "b"], "uneven")
    assert uneven.balanced(8).labels.bincount().tolist() == [6, 2]  # a short class gives all it has
    assert len(data.balanced(1000)) == 500 and len(data.balanced(0)) == 0
