"""sdnet: convolutional sparse coding layers and SDNet models (Dai et al., NeurIPS 2022).

    import sdnet
    layer = sdnet.CSCConv2d(3, 64, 3, padding=1, lam=0.1)     # drop-in for nn.Conv2d
    model = sdnet.models.build("sdnet18", num_classes=10)      # inputs: images in [0, 1]
    with sdnet.csc_lambda(model, 0.5):                        # test-time sparsity
        logits = model(images)

The names below are imported on first use, so that ``import sdnet.config`` (checking a
params.yaml before any work) does not pay for importing torch.
"""

import importlib

__all__ = ["CSCConv2d", "csc_lambda", "csc_layers", "convert", "models"]
__version__ = "0.1.0"

_LAZY = {"CSCConv2d": "sdnet.csc", "csc_lambda": "sdnet.csc", "csc_layers": "sdnet.csc", "convert": "sdnet.models"}


def __getattr__(name: str):
    # importlib, not `from sdnet import models`: that form looks the name up on this package
    # first, which calls this function again, and again (a RecursionError on first use).
    if name == "models":
        return importlib.import_module("sdnet.models")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdnet' has no attribute {name!r}")
