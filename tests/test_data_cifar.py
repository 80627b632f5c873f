"""The CIFAR reader, its checksums and download, load_dataset's errors, and data.dvc.

Real pixels come from ../shared/data/cifar-mini (the first images of each official batch,
repacked): those tests skip when it is absent.
"""

import dataclasses
import hashlib
import importlib.util
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import MINI, ROOT
from sdnet.data import DATASETS, DataError, load_dataset
from sdnet.data import cifar
from sdnet.data.cifar import OFFICIAL_FILES, SPECS, read_split

needs_mini = pytest.mark.skipif(not MINI.is_dir(), reason="../shared/data/cifar-mini is not present")


def raw(path: Path) -> dict:
    """The plain pickle, read independently of the package's reader."""
    with path.open("rb") as f:
        return pickle.load(f, encoding="bytes")


def planes_to_image(row: np.ndarray) -> np.ndarray:
    """The documented layout, spelled out: R plane, G plane, B plane, each 32x32 row-major."""
    return np.stack([row[0:1024].reshape(32, 32), row[1024:2048].reshape(32, 32), row[2048:3072].reshape(32, 32)])


# --- the mini copies: not official, but readable -------------------------------------------------


@needs_mini
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_verification_rejects_the_mini_copies_as_not_official(name):
    with pytest.raises(DataError, match=r"is not the official CIFAR-10*.*verify=False"):
        load_dataset(name, MINI)


@needs_mini
def test_cifar10_mini_without_verification_matches_the_raw_pickles():
    train, test = load_dataset("cifar10", MINI, verify=False)
    assert train.images.shape == (1102 + 4 * 1017, 3, 32, 32) and test.images.shape == (1017, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64 and train.images.is_contiguous()
    assert train.name == "CIFAR-10" and train.classes == cifar.CIFAR10_CLASSES
    batch = raw(MINI / "cifar-10-batches-py" / "test_batch")
    for i in (0, 1, 500, 1016):
        assert np.array_equal(test.images[i].numpy(), planes_to_image(np.asarray(batch[b"data"][i])))
    assert test.labels.tolist() == list(batch[b"labels"])
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the real first CIFAR-10 test labels
    # the training split is the five batches in order
    second = raw(MINI / "cifar-10-batches-py" / "data_batch_2")
    assert np.array_equal(train.images[1102].numpy(), planes_to_image(np.asarray(second[b"data"][0])))
    assert train.labels[1102 : 1102 + 1017].tolist() == list(second[b"labels"])


@needs_mini
def test_cifar100_mini_uses_the_fine_labels():
    train, test = load_dataset("cifar100", MINI, verify=False)
    assert (len(train), len(test)) == (486, 916) and len(train.classes) == 100 and train.name == "CIFAR-100"
    batch = raw(MINI / "cifar-100-python" / "test")
    assert test.labels.tolist() == list(batch[b"fine_labels"])
    assert np.array_equal(test.images[915].numpy(), planes_to_image(np.asarray(batch[b"data"][915])))
    assert train.classes[:3] == ["apple", "aquarium_fish", "baby"]


@needs_mini
def test_limit_keeps_a_class_balanced_subset_in_order():
    full, _ = load_dataset("cifar10", MINI, verify=False)
    train, test = load_dataset("cifar10", MINI, verify=False, limit=100)
    assert (len(train), len(test)) == (100, 100)
    assert train.labels.bincount(minlength=10).tolist() == [10] * 10 and test.labels.bincount(minlength=10).tolist() == [10] * 10
    chosen = full.balanced_indices(100)
    assert torch.equal(train.images, full.images[chosen]) and bool((chosen.diff() > 0).all())  # in the split's order


# --- damaged and missing files ------------------------------------------------------------------


@pytest.fixture
def mini_copy(tmp_path):
    if not MINI.is_dir():
        pytest.skip("../shared/data/cifar-mini is not present")
    shutil.copytree(MINI / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    return tmp_path


def test_truncated_file_gives_a_clear_error(mini_copy):
    path = mini_copy / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"test_batch.*truncated, corrupt or not a CIFAR pickle"):
        read_split("cifar10", mini_copy, "test", verify=False)
    with pytest.raises(DataError, match=r"test_batch is not the official CIFAR-10 file \(its size is 5000 bytes"):
        read_split("cifar10", mini_copy, "test")


def test_corrupted_file_gives_a_clear_error(mini_copy):
    path = mini_copy / "cifar-10-batches-py" / "test_batch"
    data = bytearray(path.read_bytes())
    data[:64] = b"\xff" * 64  # a damaged header
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="test_batch"):
        read_split("cifar10", mini_copy, "test", verify=False)
    path.write_bytes(pickle.dumps({b"labels": [1, 2]}, protocol=2))  # a valid pickle, wrong content
    with pytest.raises(DataError, match=r"test_batch has no b'data' entry"):
        read_split("cifar10", mini_copy, "test", verify=False)


def test_a_pickle_that_would_run_code_is_refused(mini_copy):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, ("/nonexistent-sdnet-test",))

    (mini_copy / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"unexpected object shutil\.rmtree"):
        read_split("cifar10", mini_copy, "test", verify=False)


def test_the_official_python2_numpy1_layout_is_accepted(tmp_path):
    """The official files name numpy 1's module (numpy.core.multiarray); files written by numpy 2
    name numpy._core. Both resolve, to the same array."""
    array = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    blob = pickle.dumps({b"data": array, b"labels": [3, 7]}, protocol=2)
    assert b"numpy._core.multiarray" in blob or b"numpy.core.multiarray" in blob
    path = tmp_path / "batch"
    path.write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    content = cifar._unpickle(path)
    assert np.array_equal(content[b"data"], array) and content[b"labels"] == [3, 7]


def test_missing_files_say_where_and_how(tmp_path, mini_copy):
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python.*download=True.*dvc pull.*copy the extracted archive"):
        load_dataset("cifar100", tmp_path / "empty")
    (mini_copy / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_3 is missing"):
        read_split("cifar10", mini_copy, "train", verify=False)


def test_unknown_dataset_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*'synthetic', 'cifar10', 'cifar100', 'cifar10-jpeg'"):
        load_dataset("mnist", tmp_path)
    assert DATASETS == ("synthetic", "cifar10", "cifar100", "cifar10-jpeg")


# --- download (from a local file:// archive: no network here) ------------------------------------


@pytest.fixture(scope="module")
def local_archive(tmp_path_factory) -> Path:
    """A cifar-10-python.tar.gz made of the mini copy (stored uncompressed, for speed: the reader
    detects the compression itself)."""
    if not MINI.is_dir():
        pytest.skip("../shared/data/cifar-mini is not present")
    archive = tmp_path_factory.mktemp("serve") / SPECS["cifar10"].archive
    with tarfile.open(archive, "w") as tar:
        tar.add(MINI / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


@pytest.fixture
def served(local_archive, monkeypatch) -> Path:
    """The local archive at a file:// URL in place of the official one, with its md5 as the official md5."""
    monkeypatch.setattr(cifar, "URL", local_archive.parent.as_uri() + "/{archive}")
    md5 = hashlib.md5(local_archive.read_bytes()).hexdigest()
    monkeypatch.setitem(SPECS, "cifar10", dataclasses.replace(SPECS["cifar10"], archive_md5=md5))
    return local_archive


def test_download_fetches_checks_and_extracts(tmp_path, served):
    root = tmp_path / "data"
    train, test = load_dataset("cifar10", root, download=True, verify=False)
    assert (len(train), len(test)) == (1102 + 4 * 1017, 1017)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # no temporary files left


def test_download_with_a_wrong_checksum_leaves_nothing_behind(tmp_path, served, monkeypatch):
    monkeypatch.setitem(SPECS, "cifar10", dataclasses.replace(SPECS["cifar10"], archive_md5="0" * 32))
    root = tmp_path / "data"
    with pytest.raises(DataError, match="not the official 0{32}: download it again"):
        load_dataset("cifar10", root, download=True, verify=False)
    assert list(root.iterdir()) == []


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "URL", (tmp_path / "nowhere").as_uri() + "/{archive}")
    with pytest.raises(DataError, match=r"could not download .*copy the extracted archive"):
        load_dataset("cifar100", tmp_path / "data", download=True)


# --- data.dvc -----------------------------------------------------------------------------------


def _script():
    spec = importlib.util.spec_from_file_location("make_data_dvc", ROOT / "scripts" / "make_data_dvc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_dvc_pins_the_official_files():
    script = _script()
    assert (ROOT / "data.dvc").read_text() == script.dvc_file(OFFICIAL_FILES)
    assert all(f"{spec.folder}/{f}" in OFFICIAL_FILES for spec in SPECS.values() for files in spec.splits.values() for f in files)


def test_directory_hash_is_dvcs():
    """The script's formula against dvc-data's own Tree digest (when DVC is installed)."""
    tree_module = pytest.importorskip("dvc_data.hashfile.tree")
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta

    files = {"b/x": (3, "0" * 31 + "1"), "a": (5, "f" * 32), "b/a~": (0, "d41d8cd98f00b204e9800998ecf8427e")}
    tree = tree_module.Tree()
    for path, (size, md5) in files.items():
        tree.add(tuple(path.split("/")), Meta(size=size), HashInfo("md5", md5))
    tree.digest()
    assert tree.hash_info.value == _script().directory_md5(files)
