"""The CIFAR-10 JPEG copy reader: layouts, verification, the decoded cache, damaged files.

Most tests write a tiny copy of their own; one decodes the real archive of ../shared/data
(about 10 s; skipped when it is absent).
"""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import SHARED
from sdnet.data import DataError, load_dataset
from sdnet.data.jpeg import ARCHIVE, CACHE, CLASSES, FOLDER, NAME, load_jpeg_copy

SHARED_ARCHIVE = SHARED / ARCHIVE


def jpeg_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Independent decoding: [3, 32, 32]."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


# train: 2 images of "cat", 1 of "airplane"; test: 1 of "truck" (listed out of order on purpose)
FILES = {"train/cat/0001.jpg": 1, "train/airplane/0007.jpg": 2, "train/cat/0000.jpg": 3, "test/truck/0000.jpg": 4}


def write_archive(root: Path, files=FILES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / ARCHIVE, "w:xz") as tar:
        for name, seed in files.items():
            data = jpeg_bytes(seed)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return root / ARCHIVE


def test_a_partial_archive_reads_in_class_then_name_order(tmp_path):
    write_archive(tmp_path)
    with pytest.raises(DataError, match=r"is not the known CIFAR-10 JPEG copy.*verify=False"):
        load_jpeg_copy(tmp_path)
    train, test = load_jpeg_copy(tmp_path, verify=False, workers=2)
    assert train.name == NAME and train.classes == CLASSES and train.images.shape == (3, 3, 32, 32)
    assert train.labels.tolist() == [0, 3, 3] and test.labels.tolist() == [9]
    for i, name in enumerate(["train/airplane/0007.jpg", "train/cat/0000.jpg", "train/cat/0001.jpg"]):
        assert np.array_equal(train.images[i].numpy(), decode(jpeg_bytes(FILES[name])))
    assert (tmp_path / CACHE).is_file()


def test_the_cache_is_used_and_follows_its_source(tmp_path):
    write_archive(tmp_path)
    first, _ = load_jpeg_copy(tmp_path, verify=False)
    cache = tmp_path / CACHE
    stamp = cache.stat().st_mtime_ns
    again, _ = load_jpeg_copy(tmp_path, verify=False)
    assert torch.equal(again.images, first.images) and cache.stat().st_mtime_ns == stamp  # read, not rewritten
    write_archive(tmp_path, {**FILES, "train/dog/0000.jpg": 5})  # the source changes: decoded again
    changed, _ = load_jpeg_copy(tmp_path, verify=False)
    assert len(changed) == 4 and 5 in changed.labels.tolist()


def test_the_extracted_folder_is_read_too_and_checked_for_completeness(tmp_path):
    for name, seed in FILES.items():
        (tmp_path / FOLDER / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / FOLDER / name).write_bytes(jpeg_bytes(seed))
    with pytest.raises(DataError, match=r"train split has \[1, 0, 0, 2.*complete CIFAR-10 JPEG copy has 5000 each"):
        load_dataset("cifar10-jpeg", tmp_path)
    train, test = load_dataset("cifar10-jpeg", tmp_path, verify=False)
    assert train.labels.tolist() == [0, 3, 3] and len(test) == 1


def test_damaged_copies_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar10-jpeg/ nor .*cifar10-jpeg.tar.xz exists.*no download"):
        load_jpeg_copy(tmp_path / "nothing")
    root = tmp_path / "bad-image"
    root.mkdir()
    with tarfile.open(root / ARCHIVE, "w:xz") as tar:
        for name, data in {"train/cat/0000.jpg": jpeg_bytes(1)[:100], "test/cat/0000.jpg": jpeg_bytes(2)}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match=r"cannot decode .*train/cat/0000.jpg"):
        load_jpeg_copy(root, verify=False)
    root = tmp_path / "stray"
    write_archive(root, {**FILES, "train/unicorn/0000.jpg": 6})
    with pytest.raises(DataError, match=r"unexpected file train/unicorn/0000.jpg"):
        load_jpeg_copy(root, verify=False)
    root = tmp_path / "truncated"
    archive = write_archive(root)
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match=r"truncated or corrupt"):
        load_jpeg_copy(root, verify=False)


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="../shared/data/cifar10-jpeg.tar.xz is not present")
def test_the_real_archive(tmp_path):
    """All 60,000 images, verified, decoded once, then read back from the cache."""
    (tmp_path / ARCHIVE).symlink_to(SHARED_ARCHIVE)
    train, test = load_jpeg_copy(tmp_path)
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10 and torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.name == "CIFAR-10 (JPEG copy)"
    with tarfile.open(SHARED_ARCHIVE, "r|xz") as tar:  # the first file of the archive, decoded independently
        member = next(m for m in tar if m.isfile())
        data = tar.extractfile(member).read()
    split, cls, file = member.name.split("/")
    index = CLASSES.index(cls) * 5000 + int(file[:4])  # files are NNNN.jpg, 0000..4999 per class
    assert split == "train" and np.array_equal(train.images[index].numpy(), decode(data))
    cached, _ = load_jpeg_copy(tmp_path)
    assert torch.equal(cached.images, train.images) and torch.equal(cached.labels, train.labels)
