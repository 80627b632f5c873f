"""Datasets, the device loader, CIFAR-10-C noise, the synthetic set, ImageNet folders."""

import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sdnet.data import DataError, DeviceLoader, ImageSet, load_dataset
from sdnet.data.cifar import read_split
from sdnet.data.corruptions import FINE_LEVELS, NOISES, SEVERITY_LEVELS, corrupt, corrupt_severity
from sdnet.data.loader import random_crop_flip
from sdnet.data.synthetic import make_synthetic

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MINI = SHARED / "cifar-mini"
needs_mini = pytest.mark.skipif(not MINI.is_dir(), reason="../shared/data/cifar-mini is not present")


# --- CIFAR reader -------------------------------------------------------------------------------

@needs_mini
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_verification_rejects_the_mini_copies_as_not_official(name):
    with pytest.raises(DataError, match="not the official file.*verify=False"):
        load_dataset(name, MINI)


@needs_mini
def test_cifar10_mini_read_without_verification_matches_the_raw_pickles():
    train, test = load_dataset("cifar10", MINI, verify=False)
    assert train.images.shape == (1102 + 4 * 1017, 3, 32, 32) and test.images.shape == (1017, 3, 32, 32)
    assert train.classes[:3] == ["airplane", "automobile", "bird"] and train.name == "CIFAR-10"
    with (MINI / "cifar-10-batches-py" / "test_batch").open("rb") as f:
        raw = pickle.load(f, encoding="bytes")
    for i in (0, 1, 500, 1016):  # independent decoding: R plane, then G, then B, each row-major
        row = np.asarray(raw[b"data"][i])
        expected = np.stack([row[:1024].reshape(32, 32), row[1024:2048].reshape(32, 32), row[2048:].reshape(32, 32)])
        assert np.array_equal(test.images[i].numpy(), expected)
        assert test.labels[i].item() == raw[b"labels"][i]
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the real first CIFAR-10 test labels


@needs_mini
def test_cifar100_mini_uses_fine_labels():
    train, test = load_dataset("cifar100", MINI, verify=False)
    assert (len(train), len(test)) == (486, 916) and len(train.classes) == 100
    assert 0 <= train.labels.min() and train.labels.max() < 100


def _mini_copy(tmp_path: Path) -> Path:
    shutil.copytree(MINI / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    return tmp_path


@needs_mini
def test_truncated_or_corrupted_file_gives_a_clear_error(tmp_path):
    root = _mini_copy(tmp_path)
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="test_batch.*truncated or not a CIFAR pickle"):
        read_split("cifar10", root, "test", verify=False)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="test_batch"):
        read_split("cifar10", root, "test", verify=False)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3 is missing.*download=True"):
        read_split("cifar10", root, "train", verify=False)


def test_missing_dataset_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist", tmp_path)


# --- the device loader --------------------------------------------------------------------------

def _numbered(n=64, size=8) -> ImageSet:
    """Images whose pixels encode (image index, row, column) so crops can be checked exactly."""
    idx = torch.arange(n).view(n, 1, 1, 1).expand(n, 3, size, size)
    rows = torch.arange(size).view(1, 1, size, 1).expand(n, 3, size, size)
    cols = torch.arange(size).view(1, 1, 1, size).expand(n, 3, size, size)
    images = (idx * 0 + rows * 16 + cols + 1).to(torch.uint8)  # 1..(size*16), 0 marks padding
    return ImageSet(images.contiguous(), torch.arange(n), ["c"], "numbered")


def test_random_crop_flip_is_an_exact_shifted_window():
    x = _numbered(4, 8).images
    offsets = torch.tensor([[0, 0], [4, 4], [8, 8], [2, 7]])
    flips = torch.tensor([False, False, False, True])
    out = random_crop_flip(x, offsets, flips, pad=4)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for b, (r, c) in enumerate(offsets.tolist()):
        window = padded[b, :, r : r + 8, c : c + 8]
        assert torch.equal(out[b], window.flip(-1) if flips[b] else window)
    assert torch.equal(out[1], x[1])  # the centre offset is the identity


def test_augmentation_probabilities_and_determinism():
    data = make_synthetic(2000, 10, seed=0)[0]
    loader = DeviceLoader(data, 500, train=True, seed=3)
    _, offsets, flips = loader._plan()
    assert abs(flips.float().mean().item() - 0.5) < 0.04
    counts = torch.bincount(offsets[:, 0] * 9 + offsets[:, 1], minlength=81).float()
    assert counts.min() > 0.4 * counts.mean() and counts.max() < 1.6 * counts.mean()  # uniform over 9x9
    first = [(x.clone(), y.clone()) for x, y in loader]
    again = [(x, y) for x, y in DeviceLoader(data, 500, train=True, seed=3)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[1], first[0][1])  # a new epoch reshuffles
    x, _ = first[0]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape == (500, 3, 32, 32)


def test_eval_loader_is_in_order_and_complete():
    data = _numbered(10)
    batches = list(DeviceLoader(data, 4, train=False))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(10))
    assert torch.equal(batches[0][0], data.images[:4].float() / 255)


@pytest.mark.parametrize("train", [True, False])
def test_distributed_shards_cover_the_epoch_once(train):
    data = _numbered(103)
    seen = [torch.cat([y for _, y in DeviceLoader(data, 8, train=train, rank=r, world_size=3, drop_last=False)]) for r in range(3)]
    everything = torch.cat(seen)
    assert len(everything.unique()) == len(everything)  # no image twice
    assert len(everything) == (102 if train else 103)  # training shards are equal, evaluation covers all
    lengths = [len(DeviceLoader(data, 8, train=True, rank=r, world_size=3)) for r in range(3)]
    assert len(set(lengths)) == 1


# --- CIFAR-10-C noise ---------------------------------------------------------------------------

GREY = torch.full((200, 3, 32, 32), 128, dtype=torch.uint8)


def test_published_constants():
    assert SEVERITY_LEVELS["gaussian"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert SEVERITY_LEVELS["shot"] == (500, 250, 100, 75, 50)
    assert FINE_LEVELS["gaussian"][0] == 0.02 and FINE_LEVELS["gaussian"][-1] == 0.2
    assert FINE_LEVELS["shot"][0] == 60 and FINE_LEVELS["shot"][-1] == 6
    assert FINE_LEVELS["impulse"][-1] == 0.3 and FINE_LEVELS["speckle"][0] == 0.1 and FINE_LEVELS["speckle"][-1] == 0.6


@pytest.mark.parametrize("sigma", [0.04, 0.1])
def test_gaussian_noise_has_std_sigma(sigma):
    y = corrupt(GREY, "gaussian", sigma, seed=1).double() / 255
    x = 128 / 255
    assert y.std().item() == pytest.approx(sigma, rel=0.03)  # mid-grey: no clipping, truncation only shifts
    assert (y.mean().item() - x) == pytest.approx(-0.5 / 255, abs=1e-3)


def test_shot_speckle_impulse_statistics():
    x = 128 / 255
    shot = corrupt(GREY, "shot", 100, seed=2).double() / 255
    assert shot.var().item() == pytest.approx(x / 100, rel=0.05)  # Poisson: var(P(xc)/c) = x/c
    speckle = corrupt(GREY, "speckle", 0.2, seed=3).double() / 255
    assert speckle.std().item() == pytest.approx(x * 0.2, rel=0.03)
    impulse = corrupt(GREY, "impulse", 0.05, seed=4)
    changed = impulse != 128
    assert changed.double().mean().item() == pytest.approx(0.05, rel=0.05)
    assert set(impulse[changed].unique().tolist()) == {0, 255}
    assert (impulse[changed] == 255).double().mean().item() == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("noise", NOISES)
def test_noise_is_deterministic_and_hurts_more_with_severity(noise):
    images = make_synthetic(10, 64, seed=0)[1].images
    a, b = corrupt_severity(images, noise, 3, seed=7), corrupt_severity(images, noise, 3, seed=7)
    assert a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, corrupt_severity(images, noise, 3, seed=8))
    errors = [(corrupt_severity(images, noise, s, seed=7).double() - images.double()).pow(2).mean().item() for s in (1, 3, 5)]
    assert errors == sorted(errors) and errors[0] > 0


# --- the synthetic dataset ----------------------------------------------------------------------

def test_synthetic_is_deterministic_balanced_and_image_like():
    train, test = make_synthetic(500, 100, seed=0)
    again, _ = make_synthetic(500, 100, seed=0)
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    assert not torch.equal(make_synthetic(500, 100, seed=1)[0].images, train.images)
    assert train.images.shape == (500, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels, minlength=10).tolist() == [50] * 10
    assert len(train.classes) == 10
    x = train.images.double()
    assert 30 < x.std().item() and (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean() > 2  # colour and edges
    assert not torch.equal(train.images[:100], test.images)


def test_limit_keeps_the_first_images():
    train, test = load_dataset("synthetic", limit=123)
    assert (len(train), len(test)) == (123, 123)


# --- the CIFAR-10 JPEG copy ---------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED / "cifar10-jpeg.tar.xz").is_file(), reason="../shared/data/cifar10-jpeg.tar.xz is not present")
def test_jpeg_copy_reader_on_a_slice_of_the_real_archive(tmp_path):
    from sdnet.data.jpeg import ARCHIVE, CLASSES, NAME, load_jpeg_copy

    picked = {"train": 0, "test": 0}
    with tarfile.open(SHARED / "cifar10-jpeg.tar.xz") as src, tarfile.open(tmp_path / ARCHIVE, "w:xz") as dst:
        for member in src:
            split = member.name.split("/")[0]
            if member.isfile() and picked[split] < 30:
                dst.addfile(member, src.extractfile(member))
                picked[split] += 1
            if min(picked.values()) >= 30:
                break
    train, test = load_jpeg_copy(tmp_path)
    assert train.name == NAME and train.images.shape == (30, 3, 32, 32) and len(test) == 30
    assert (tmp_path / "cifar10-jpeg.npz").is_file()
    again, _ = load_jpeg_copy(tmp_path)  # from the cache
    assert torch.equal(again.images, train.images) and train.classes == CLASSES


# --- ImageNet folders ---------------------------------------------------------------------------

def test_imagenet_folder_loaders(tmp_path):
    from PIL import Image

    from sdnet.data.imagenet import imagenet_loaders

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    train, val = imagenet_loaders(tmp_path, 4, workers=0, crop=16, resize=20)
    x, y = next(iter(train))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    xs = torch.cat([x for x, _ in val])
    assert xs.shape == (8, 3, 16, 16) and train.dataset.classes == ["n01", "n02"]
    with pytest.raises(FileNotFoundError, match="ImageNet must be laid out"):
        imagenet_loaders(tmp_path / "nowhere", 4, workers=0)
