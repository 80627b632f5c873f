"""A computing stage's results as a chapter reads them: ``results/<stage>/``'s tables and its
``about.json`` (what was run: the networks compared, the images, the settings), written by
:func:`sdnet.stages.common.save_results`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def read_about(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "about.json").read_text())


def read_table(folder: Path, name: str, *, optional: bool = False) -> pd.DataFrame | None:
    """``<name>.csv``; None for an ``optional`` table this run did not write (e.g. the rival,
    without a ResNet-18)."""
    path = folder / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() or not optional else None


class Compared:
    """What every stage's ``about`` says of the networks it compared: SDNet-18's run and the
    baseline's (None at a profile without a ResNet-18)."""

    about: dict[str, Any]

    @property
    def sdnet(self) -> str:
        return self.about["sdnet"]

    @property
    def baseline(self) -> str | None:
        return self.about["baseline"]
