"""Which images a measurement got right: the per-image results beside a stage's csv tables.

An accuracy on n images is an estimate; two accuracies on the *same* images are paired, and how
far apart they may fall by chance depends on how often the two disagree, which only the
per-image results tell. They also let a knob chosen on one half of the images be scored on the
other under a bootstrap over the images (:mod:`sdnet.chapters.noise_defenders`).

A stage writes one ``hits.npz`` beside its tables: for each table (and per-image column) a
2-D array whose row i holds the hits of the table's row i, packed eight images to a byte
(``numpy.packbits``), with the row lengths kept so they unpack exactly::

    save(folder / "hits.npz", {"sweep": list_of_bool_arrays})
    rows = load(folder / "hits.npz")["sweep"]     # list of bool arrays, one per csv row
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def save(path: str | Path, tables: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write each table's per-row bool arrays (rows of one table may differ in length, e.g. two
    halves of an odd number of images), compressed."""
    out = {}
    for name, rows in tables.items():
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        width = (int(lengths.max()) + 7) // 8 if len(rows) else 0
        packed = np.zeros((len(rows), width), dtype=np.uint8)
        for i, r in enumerate(rows):
            bits = np.packbits(np.asarray(r, dtype=bool))
            packed[i, : len(bits)] = bits
        out[f"{name}/bits"], out[f"{name}/lengths"] = packed, lengths
    np.savez_compressed(path, **out)


def load(path: str | Path) -> dict[str, list[np.ndarray]]:
    """The tables :func:`save` wrote: name -> one bool array per row."""
    with np.load(path) as stored:
        names = sorted({key.rsplit("/", 1)[0] for key in stored.files})
        return {name: [np.unpackbits(row, count=int(n)).astype(bool) for row, n in zip(stored[f"{name}/bits"], stored[f"{name}/lengths"])]
                for name in names}
