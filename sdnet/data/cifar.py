"""CIFAR-10 / CIFAR-100 in their official layout, read by our own small reader.

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

Every file is checked against the official md5 (``verify=True``): a copy that differs is
reported as "not the official file", and ``verify=False`` reads it anyway (for subsets, repacked
copies...). The pickles hold each split as one uint8 array [N, 3072] (row-major RGB planes),
which becomes a [N, 3, 32, 32] tensor without any per-image object.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from sdnet.data.imageset import ImageSet

URL = "https://www.cs.toronto.edu/~kriz/{archive}"


class DataError(RuntimeError):
    """Dataset files are missing, corrupt, or not the official ones."""


# name -> folder, archive (name, md5), splits {split: [files]}, meta file, label key, class-names key,
# official md5 of every file
SPECS = {
    "cifar10": dict(
        folder="cifar-10-batches-py", archive=("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        splits={"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        meta="batches.meta", label_key=b"labels", names_key=b"label_names", display="CIFAR-10",
        md5={
            "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
    ),
    "cifar100": dict(
        folder="cifar-100-python", archive=("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
        splits={"train": ["train"], "test": ["test"]},
        meta="meta", label_key=b"fine_labels", names_key=b"fine_label_names", display="CIFAR-100",
        md5={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc", "meta": "7973b15100ade9c7d40fb424638fde48"},
    ),
}


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DataError(f"cannot read {path}: {error!r}. The file is truncated or not a CIFAR pickle; delete it and download the dataset again.") from error


def _check(path: Path, expected_md5: str, verify: bool, name: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing. Get the official {name} files into {path.parent.parent} "
            f"(load_dataset(..., download=True) online, `dvc pull` with a DVC remote, or copy the extracted archive there)."
        )
    if verify and md5sum(path) != expected_md5:
        raise DataError(
            f"{path} is not the official file (its md5 differs from {expected_md5}). Download it again, or, if this is "
            f"a deliberate copy (a subset, a repack), read it with verify=False (params.yaml: data.verify: false)."
        )


def download(name: str, root: str | Path) -> None:
    """Fetch and verify the official archive, then extract it under ``root`` (atomically)."""
    spec = SPECS[name]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archive, archive_md5 = spec["archive"]
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        target = Path(tmp) / archive
        print(f"downloading {URL.format(archive=archive)} ...")
        urllib.request.urlretrieve(URL.format(archive=archive), target)
        if md5sum(target) != archive_md5:
            raise DataError(f"the downloaded {archive} has the wrong md5 (expected {archive_md5}); try again")
        with tarfile.open(target) as tar:
            tar.extractall(tmp, filter="data")
        destination = root / spec["folder"]
        if destination.exists():
            shutil.rmtree(destination)
        (Path(tmp) / spec["folder"]).rename(destination)


def read_split(name: str, root: str | Path, split: str, *, verify: bool = True) -> ImageSet:
    """One split ("train" or "test") of ``name`` ("cifar10" | "cifar100") as an ImageSet."""
    spec = SPECS[name]
    folder = Path(root) / spec["folder"]
    meta_path = folder / spec["meta"]
    _check(meta_path, spec["md5"][spec["meta"]], verify, spec["display"])
    classes = [c.decode() for c in _unpickle(meta_path)[spec["names_key"]]]
    images, labels = [], []
    for file in spec["splits"][split]:
        path = folder / file
        _check(path, spec["md5"][file], verify, spec["display"])
        batch = _unpickle(path)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            label = np.asarray(batch[spec["label_key"]], dtype=np.int64)
        except KeyError as error:
            raise DataError(f"{path} has no {error} entry: not a {spec['display']} batch") from error
        if data.ndim != 2 or data.shape[1] != 3072 or len(label) != len(data):
            raise DataError(f"{path}: expected data [N, 3072] and N labels, got {data.shape} and {len(label)}")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32)))
        labels.append(torch.from_numpy(label))
    return ImageSet(torch.cat(images), torch.cat(labels), classes, spec["display"])


def load_cifar(name: str, root: str | Path, *, verify: bool = True, download_missing: bool = False) -> tuple[ImageSet, ImageSet]:
    spec = SPECS[name]
    if download_missing and not (Path(root) / spec["folder"] / spec["meta"]).exists():
        download(name, root)
    return read_split(name, root, "train", verify=verify), read_split(name, root, "test", verify=verify)
