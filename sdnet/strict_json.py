"""Strict JSON for results: no NaN (JSON has none; a missing number is null), plain numbers, atomic writes.

Every metrics and results file of the package goes through :func:`write_json`. Its own module, so
that the modules that write results (training, evaluation, the stages) and the study that reads
them need not import each other.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN) and numpy/torch
    scalars made plain, recursively through dicts and lists."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, values: Any) -> Path:
    """Strict JSON (``allow_nan=False`` after :func:`json_ready`), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_ready(values), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path
