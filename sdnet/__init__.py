"""sdnet: convolutional sparse coding layers and SDNet models (Dai et al., NeurIPS 2022).

    import sdnet
    layer = sdnet.CSCConv2d(3, 64, 3, padding=1, lam=0.1)     # drop-in for nn.Conv2d
    model = sdnet.models.build("sdnet18", num_classes=10)      # inputs: images in [0, 1]
    with sdnet.csc_lambda(model, 0.5):                        # test-time sparsity
        logits = model(images)

The package has three floors, each importing only itself and the floors below:

- the library, what a reader imports: ``csc`` (the layer), ``models``, ``data``, ``config`` and
  ``train`` (training), ``evaluate``, ``device``, ``checkpoint``, ``attacks``, ``denoise``,
  ``robustness``, ``adaptive``, ``analysis``, ``reconstruction``, ``hits``, ``released``, ``provenance``;
- ``sdnet.chapters``: what the chapters compute from results (the paper's numbers, the held-out
  protocol, verdict rules, the reports of chapters 1-5, figures);
- the study and its pipeline: ``params`` (params.yaml), ``study``, ``stages`` (one command per
  DVC stage), ``pipeline``, ``stale``, ``readme``, ``marked``;

and ``sdnet.tools`` for commands no stage runs (``python -m sdnet.tools.bench``).

The names below are imported on first use, so that ``import sdnet.params`` (checking a
params.yaml before any work) does not pay for importing torch.
"""

__all__ = ["CSCConv2d", "csc_lambda", "csc_layers", "convert", "models"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # `import sdnet.x`, not `from sdnet import x`: the latter looks the name up on this package
    # first, which calls this function again, and again (a RecursionError on first use). The
    # plain imports also keep the modules visible to sdnet.provenance's import scan.
    if name in ("CSCConv2d", "csc_lambda", "csc_layers"):
        import sdnet.csc

        return getattr(sdnet.csc, name)
    if name in ("models", "convert"):
        import sdnet.models

        return sdnet.models if name == "models" else sdnet.models.convert
    raise AttributeError(f"module 'sdnet' has no attribute {name!r}")
