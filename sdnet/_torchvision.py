"""The one place that imports torchvision (for ImageNet folders and transforms only).

Why this exists: the PyPI torchvision wheel is built against CUDA torch. Next to a CPU-only torch
its compiled ops library does not load, and ``import torchvision`` then dies in
``torchvision/_meta_registrations.py``, which registers fake kernels for the ops ``nms`` and
``qnms`` without checking that their schemas exist ("operator torchvision::nms does not exist",
upstream pytorch/vision#9085). Defining those two schemas first lets the import finish; the
compiled ops (nms, roi_align, ...) stay unavailable, and sdnet does not use them. Where the ops
library loads (a matching CUDA install), the first plain import succeeds and nothing is defined.
The core layer and model code never import torchvision.
"""

from __future__ import annotations

import sys
from types import ModuleType

_MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # keeps the schema definitions alive


def import_torchvision() -> ModuleType:
    """``import torchvision``, working around a CUDA wheel beside a CPU torch (see module doc)."""
    global _library
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "transforms"):
        return sys.modules["torchvision"]
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        import torch.library

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # drop the half-imported package before trying again
        _library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _MISSING_SCHEMAS:
            _library.define(schema)
        import torchvision
    return torchvision
