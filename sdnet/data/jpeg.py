"""The CIFAR-10 JPEG copy: all 60,000 CIFAR-10 images re-encoded as JPEG (quality about 75).

A close stand-in for CIFAR-10 where the official files cannot be had, but not CIFAR-10 itself
(PSNR about 30 dB against the original pixels): results on it are always labelled
"CIFAR-10 (JPEG copy)" and are expected to sit a little below the paper's.

Accepted layouts under ``root`` (the first found is used):

    <root>/cifar10-jpeg/{train,test}/<class>/NNNN.jpg      the extracted tree
    <root>/cifar10-jpeg.tar.xz                             the archive of that tree

The 60,000 tiny JPEGs are decoded once (a thread pool decodes chunks while the archive is still
being read; Pillow releases the GIL while decoding) and the pixels are cached beside the source
as ``cifar10-jpeg.cache.npz`` (uint8, uncompressed), tagged with a fingerprint of the source so
that a changed source is decoded again. Images are ordered by class, then file name.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from sdnet.data.cifar import CIFAR10_CLASSES, md5sum
from sdnet.data.imageset import DataError, ImageSet

NAME = "CIFAR-10 (JPEG copy)"
CLASSES = CIFAR10_CLASSES
ARCHIVE, FOLDER, CACHE = "cifar10-jpeg.tar.xz", "cifar10-jpeg", "cifar10-jpeg.cache.npz"
ARCHIVE_MD5 = "d1585d5dfece7490b3537929d244cd13"  # the known archive (18,504,572 bytes)
PER_CLASS = {"train": 5000, "test": 1000}  # the complete copy, as in CIFAR-10
CHUNK = 1000  # images per decoding task


def _decode_chunk(chunk: list[tuple[str, bytes]]) -> np.ndarray:
    """[len(chunk), 32, 32, 3] uint8 from (name, JPEG bytes) pairs; the name is for errors."""
    from PIL import Image

    out = np.empty((len(chunk), 32, 32, 3), dtype=np.uint8)
    for i, (name, data) in enumerate(chunk):
        try:
            with Image.open(io.BytesIO(data)) as image:
                pixels = np.asarray(image.convert("RGB"))
        except Exception as error:  # Pillow raises several types for a damaged file
            raise DataError(f"cannot decode {name}: {error}; the CIFAR-10 JPEG copy is damaged, get it again") from error
        if pixels.shape != (32, 32, 3):
            raise DataError(f"{name} is {pixels.shape[1]}x{pixels.shape[0]}, not a 32x32 CIFAR image")
        out[i] = pixels
    return out


def _parse(name: str) -> tuple[str, int] | None:
    """(split, label) of ``split/class/NNNN.jpg``; None for entries that are not JPEG files."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or not parts[-1].lower().endswith(".jpg"):
        return None
    if len(parts) != 3 or parts[0] not in PER_CLASS or parts[1] not in CLASSES:
        raise DataError(f"unexpected file {name} in the CIFAR-10 JPEG copy (expected train|test/<CIFAR-10 class>/NNNN.jpg)")
    return parts[0], CLASSES.index(parts[1])


def _entries(source: Path) -> Iterator[tuple[str, bytes]]:
    """(relative name, bytes) of every file of the source, folder or archive, in stored order."""
    if source.is_dir():
        for path in source.rglob("*.jpg"):
            yield path.relative_to(source).as_posix(), path.read_bytes()
        return
    try:
        with tarfile.open(source) as tar:
            for member in tar:
                if member.isfile():
                    file = tar.extractfile(member)
                    if file is not None:
                        yield member.name, file.read()
    except (tarfile.TarError, EOFError, OSError) as error:  # lzma errors are OSError/EOFError
        raise DataError(f"cannot read {source}: {error}; the archive is truncated or corrupt, get it again") from error


def _decode_all(source: Path, workers: int) -> dict[str, np.ndarray]:
    """Decode every image of ``source`` into {split}_images [N, 3, 32, 32] / {split}_labels."""
    keys: dict[str, list[tuple[int, str]]] = {split: [] for split in PER_CLASS}  # (label, file name)
    parts: dict[str, list[Future]] = {split: [] for split in PER_CLASS}
    pending: dict[str, list[tuple[str, bytes]]] = {split: [] for split in PER_CLASS}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for name, data in _entries(source):
            parsed = _parse(name)
            if parsed is None:
                continue
            split, label = parsed
            keys[split].append((label, name.rsplit("/", 1)[-1]))
            pending[split].append((f"{source}:{name}", data))
            if len(pending[split]) == CHUNK:
                parts[split].append(pool.submit(_decode_chunk, pending[split]))
                pending[split] = []
        for split in PER_CLASS:
            if pending[split]:
                parts[split].append(pool.submit(_decode_chunk, pending[split]))
        arrays = {}
        for split in PER_CLASS:
            if not keys[split]:
                raise DataError(f"{source} holds no {split}/<class>/*.jpg images: not the CIFAR-10 JPEG copy")
            images = np.concatenate([part.result() for part in parts[split]])
            order = sorted(range(len(keys[split])), key=keys[split].__getitem__)  # class, then file name
            arrays[f"{split}_images"] = np.ascontiguousarray(images[order].transpose(0, 3, 1, 2))
            arrays[f"{split}_labels"] = np.array([keys[split][i][0] for i in order], dtype=np.int64)
    return arrays


def _tree_fingerprint(folder: Path) -> str:
    """Identifies an extracted tree's content cheaply: its file names, sizes and modification times."""
    digest = hashlib.md5()
    for path in sorted(folder.rglob("*.jpg")):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return f"tree {digest.hexdigest()}"


def _read_cache(cache: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(cache) as stored:
            if str(stored["fingerprint"]) != fingerprint:
                return None
            return {key: stored[key] for key in stored.files if key != "fingerprint"}
    except (OSError, ValueError, KeyError, EOFError):  # absent, or damaged: decode again
        return None


def _write_cache(cache: Path, arrays: dict[str, np.ndarray], fingerprint: str) -> None:
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, fingerprint=np.array(fingerprint), **arrays)
        tmp.replace(cache)  # atomic: readers see the old cache or the new one, never half of one
    except OSError as error:
        tmp.unlink(missing_ok=True)
        message = f"could not cache the decoded CIFAR-10 JPEG copy at {cache} ({error}); it will be decoded again next time"
        warnings.warn(message, stacklevel=3)


def _check_complete(arrays: dict[str, np.ndarray], source: Path) -> None:
    for split, expected in PER_CLASS.items():
        counts = np.bincount(arrays[f"{split}_labels"], minlength=len(CLASSES))
        if (counts != expected).any():
            raise DataError(
                f"{source}: the {split} split has {counts.tolist()} images per class, the complete CIFAR-10 JPEG copy "
                f"has {expected} each. Get the complete copy, or read a partial one with verify=False."
            )


def load_jpeg_copy(
    root: str | Path, *, verify: bool = True, workers: int | None = None, cache_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet]:
    """(train, test) of the CIFAR-10 JPEG copy under ``root``, decoding once and caching.

    ``verify``: the archive must be the known one (md5) and every split complete; ``workers``:
    decoding threads (default: the CPU count); ``cache_dir``: where the decoded cache goes
    (default: ``root``; if it is not writable, a warning, and no cache).
    """
    root = Path(root)
    source = next((p for p in (root / FOLDER, root / ARCHIVE) if p.exists()), None)
    if source is None:
        raise FileNotFoundError(
            f"neither {root / FOLDER}/ nor {root / ARCHIVE} exists. Put the CIFAR-10 JPEG copy there (the archive, or "
            f"its train/ and test/ folders extracted into {root / FOLDER}/; it has no download); or use dataset 'cifar10' "
            f"with the official files."
        )
    if source.is_file():
        md5 = md5sum(source)  # both the verification and the cache's fingerprint
        if verify and md5 != ARCHIVE_MD5:
            raise DataError(
                f"{source} is not the known CIFAR-10 JPEG copy (md5 {md5}, expected {ARCHIVE_MD5}). Get it again, or "
                f"read this copy with verify=False (params.yaml: data.verify: false)."
            )
        fingerprint = f"archive md5 {md5}"
    else:
        fingerprint = _tree_fingerprint(source)
    cache = Path(cache_dir or root) / CACHE
    arrays = _read_cache(cache, fingerprint)
    if arrays is None:
        arrays = _decode_all(source, workers or os.cpu_count() or 1)
        _write_cache(cache, arrays, fingerprint)
    if verify:
        _check_complete(arrays, source)
    return tuple(  # type: ignore[return-value]
        ImageSet(torch.from_numpy(arrays[f"{split}_images"]), torch.from_numpy(arrays[f"{split}_labels"]), list(CLASSES), NAME)
        for split in ("train", "test")
    )

