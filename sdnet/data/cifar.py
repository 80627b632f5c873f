"""CIFAR-10 / CIFAR-100 in their official layout, read by our own small reader.

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

With ``verify=True`` every file is checked against the official size and md5 first: a copy that
differs is reported as "not the official file", and ``verify=False`` reads it anyway (subsets,
repacked copies). Each pickle holds a split as one uint8 array [N, 3072] (row-major R, G, B
planes of 32x32), which becomes a [N, 3, 32, 32] tensor by a reshape: no per-image object.

The pickles are read with an unpickler that only accepts the few numpy objects these files
contain, so an unverified file cannot run code when it is loaded.

``download`` fetches the official archive, checks its md5, and extracts it atomically: the
dataset folder appears complete or not at all.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdnet.data.imageset import DataError, ImageSet

URL = "https://www.cs.toronto.edu/~kriz/{archive}"

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# Every file of the two official archives once extracted: path -> (bytes, md5). Source: the
# archives at https://www.cs.toronto.edu/~kriz/cifar.html. The reader checks the files it reads;
# scripts/make_data_dvc.py pins all of them in data.dvc.
OFFICIAL_FILES: dict[str, tuple[int, str]] = {
    "cifar-10-batches-py/batches.meta": (158, "5ff9c542aee3614f3951f8cda6e48888"),
    "cifar-10-batches-py/data_batch_1": (31035704, "c99cafc152244af753f735de768cd75f"),
    "cifar-10-batches-py/data_batch_2": (31035320, "d4bba439e000b95fd0a9bffe97cbabec"),
    "cifar-10-batches-py/data_batch_3": (31035999, "54ebc095f3ab1f0389bbae665268c751"),
    "cifar-10-batches-py/data_batch_4": (31035696, "634d18415352ddfa80567beed471001a"),
    "cifar-10-batches-py/data_batch_5": (31035623, "482c414d41f54cd18b22e5b47cb7c3cb"),
    "cifar-10-batches-py/readme.html": (88, "82949b010606e8171045e61c60921d12"),
    "cifar-10-batches-py/test_batch": (31035526, "40351d587109b95175f43aff81a1287e"),
    "cifar-100-python/file.txt~": (0, "d41d8cd98f00b204e9800998ecf8427e"),
    "cifar-100-python/meta": (1473, "7973b15100ade9c7d40fb424638fde48"),
    "cifar-100-python/test": (31049707, "f0ef6b0ae62326f3e7ffdfab6717acfc"),
    "cifar-100-python/train": (155249918, "16019d7e3df5f24257cddd939b257f8d"),
}


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR variant lives and how its pickles are keyed."""

    display: str  # the name tables and figures use
    folder: str  # the folder the archive extracts to
    archive: str
    archive_md5: str
    splits: dict[str, tuple[str, ...]]  # split -> batch files, in order
    meta: str  # the file with the class names
    label_key: bytes
    names_key: bytes


SPECS = {
    "cifar10": CifarSpec(
        display="CIFAR-10",
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
    ),
    "cifar100": CifarSpec(
        display="CIFAR-100",
        folder="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        splits={"train": ("train",), "test": ("test",)},
        meta="meta",
        label_key=b"fine_labels",  # the 100 classes the paper reports (not the 20 superclasses)
        names_key=b"fine_label_names",
    ),
}


def _spec(name: str) -> CifarSpec:
    if name not in SPECS:
        raise ValueError(f"unknown CIFAR variant {name!r}; choose one of {tuple(SPECS)}")
    return SPECS[name]


# --- reading -----------------------------------------------------------------------------------


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _numpy_reconstruct():
    try:  # numpy >= 2 (files pickled by numpy 2 name this module too)
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals that CIFAR pickles reference: a numpy array and its dtype
    (official files: Python 2 with numpy 1; repacked copies: Python 3, hence ``_codecs.encode``)."""

    ALLOWED = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("_codecs", "encode"): lambda: __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} (a CIFAR file holds only arrays, lists and bytes)")
        return self.ALLOWED[module, name]()


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            content = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as error:  # a damaged pickle can fail in many ways; all mean the same here
        raise DataError(
            f"cannot read {path}: {type(error).__name__}: {error}. The file is truncated, corrupt or not a "
            f"CIFAR pickle: delete it and get the dataset again (load_dataset(..., download=True), or `dvc pull`)."
        ) from error
    if not isinstance(content, dict):
        raise DataError(f"{path} is not a CIFAR pickle (it holds a {type(content).__name__}, not a dict)")
    return content


def _how_to_get(spec: CifarSpec, root: Path) -> str:
    return (
        f"Get the official {spec.display} files into {root / spec.folder}: load_dataset(..., download=True) "
        f"fetches {URL.format(archive=spec.archive)}; `dvc pull` does with a DVC remote; or copy the extracted "
        f"archive there."
    )


def _check_file(path: Path, spec: CifarSpec, root: Path, verify: bool) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing. {_how_to_get(spec, root)}")
    if not verify:
        return
    size, md5 = OFFICIAL_FILES[f"{spec.folder}/{path.name}"]
    actual = path.stat().st_size
    # The size check is free and names the likely cause; the md5 is the real test.
    differs = f"its size is {actual} bytes, the official file's {size}" if actual != size else None
    if differs is None and md5sum(path) != md5:
        differs = f"its md5 differs from the official {md5}"
    if differs:
        raise DataError(
            f"{path} is not the official {spec.display} file ({differs}). Delete it and download the dataset "
            f"again, or, if it is a deliberate copy (a subset, a repack), read it with verify=False "
            f"(params.yaml: data.verify: false)."
        )


def read_split(name: str, root: str | Path, split: str, *, verify: bool = True) -> ImageSet:
    """One split ("train" or "test") of ``name`` ("cifar10" | "cifar100") as an ImageSet."""
    spec, root = _spec(name), Path(root)
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(spec.splits)}")
    folder = root / spec.folder
    _check_file(folder / spec.meta, spec, root, verify)
    meta = _unpickle(folder / spec.meta)
    if spec.names_key not in meta:
        raise DataError(f"{folder / spec.meta} has no {spec.names_key!r} entry: not the {spec.display} meta file")
    classes = [c.decode() for c in meta[spec.names_key]]
    images, labels = [], []
    for file in spec.splits[split]:
        path = folder / file
        _check_file(path, spec, root, verify)
        batch = _unpickle(path)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            label = np.asarray(batch[spec.label_key], dtype=np.int64)
        except KeyError as error:
            raise DataError(f"{path} has no {error} entry: not a {spec.display} batch file") from error
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or label.shape != (len(data),):
            raise DataError(f"{path}: expected data [N, 3072] and N labels, got data {list(data.shape)} and {label.size} labels")
        if len(label) and not (0 <= label.min() and label.max() < len(classes)):
            raise DataError(f"{path}: labels outside 0..{len(classes) - 1}; the file does not belong to {spec.display}")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32)))
        labels.append(torch.from_numpy(label))
    return ImageSet(torch.cat(images), torch.cat(labels), classes, spec.display)


def _missing(spec: CifarSpec, root: Path) -> list[Path]:
    files = [spec.meta, *(f for files in spec.splits.values() for f in files)]
    return [root / spec.folder / f for f in files if not (root / spec.folder / f).is_file()]


def load_cifar(name: str, root: str | Path, *, verify: bool = True, download: bool = False) -> tuple[ImageSet, ImageSet]:
    """(train, test) of ``name`` ("cifar10" | "cifar100"); ``download`` fetches missing files."""
    spec, root = _spec(name), Path(root)
    if download and _missing(spec, root):
        download_cifar(name, root)
    return read_split(name, root, "train", verify=verify), read_split(name, root, "test", verify=verify)


# --- downloading -------------------------------------------------------------------------------


def _fetch(url: str, target: Path) -> None:
    """Copy ``url`` to ``target`` with a progress bar (urllib handles https:// and file://)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None) as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def _extract(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.12 and recent point releases
            tar.extractall(into, filter="data")
        else:  # the archive's md5 was checked, but refuse paths that leave the folder anyway
            for member in tar.getmembers():
                if Path(member.name).is_absolute() or ".." in Path(member.name).parts:
                    raise DataError(f"{archive} contains an unsafe path {member.name!r}")
            tar.extractall(into)


def download_cifar(name: str, root: str | Path) -> Path:
    """Fetch the official archive of ``name``, check its md5, and extract it under ``root``.

    Everything happens in a temporary folder inside ``root``; the finished dataset folder is then
    renamed into place, so an interrupted download leaves no half-extracted dataset behind.
    Returns the dataset folder.
    """
    spec, root = _spec(name), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    url = URL.format(archive=spec.archive)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = Path(tmp) / spec.archive
        try:
            _fetch(url, archive)
        except OSError as error:
            raise DataError(
                f"could not download {url}: {error}. Check the network, or copy the extracted archive into "
                f"{root / spec.folder} yourself (`dvc pull` does with a DVC remote)."
            ) from error
        if (md5 := md5sum(archive)) != spec.archive_md5:
            raise DataError(f"the downloaded {spec.archive} has md5 {md5}, not the official {spec.archive_md5}: download it again")
        _extract(archive, Path(tmp) / "extracted")
        fresh, destination = Path(tmp) / "extracted" / spec.folder, root / spec.folder
        if not fresh.is_dir():
            raise DataError(f"{spec.archive} does not contain the folder {spec.folder}/")
        if destination.exists():  # a partial copy: move it aside (removed with tmp), then swap
            os.replace(destination, Path(tmp) / "previous")
        os.replace(fresh, destination)
    return destination

