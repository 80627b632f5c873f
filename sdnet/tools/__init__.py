"""Commands no stage runs: ``python -m sdnet.tools.bench`` (training and layer speed on this machine)."""
