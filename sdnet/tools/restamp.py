"""Record finished networks as made by today's weight-deciding code, after a change to that code
was shown not to change what training computes.

    python -m sdnet.tools.restamp reports/quick/models reports/cpu/models          # what it would do
    python -m sdnet.tools.restamp reports/quick/models reports/cpu/models --write

Every checkpoint carries a fingerprint of the code that decides the weights
(:func:`sdnet.provenance.weights_fingerprint`), and the trainer keeps a finished network only under
the same fingerprint: after a refactor of that code (a module moved, a comment edited), the next
run of a ``train@<run>`` stage would train every shipped network again. When the change is shown not
to alter training (the procedure: train the quick study's networks and a cpu-recipe network for a
few epochs with the old and the new code on one machine, and compare the weights bit for bit;
``scripts/same_training.sh``), this command writes today's fingerprint into each ``weights.pt``
under the folders given, keeping the one it was trained with as ``trained_with_code`` (its
``training.json`` is left as written: the record of the run). Only the provenance changes: the
tensors, the configuration and the record are as they were, and the command checks it.
Resume states (``resume.pt``) are not touched: an unfinished run resumes only under the code it
started with.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from sdnet import checkpoint
from sdnet.config import command_line
from sdnet.provenance import weights_fingerprint


def same(a: Any, b: Any) -> bool:
    """Whether two checkpoint values are equal, tensors bit for bit (dtype and shape included)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def restamp(path: Path, code: str, write: bool) -> str | None:
    """Give the finished network at ``path`` the code fingerprint ``code``; returns the one it had
    (None when it already has ``code``)."""
    ckpt = checkpoint.load(path)
    checkpoint.require_finished(ckpt, path, "only a finished network is restamped")
    before = ckpt["provenance"]["code"]
    if before == code:
        return None
    if write:
        stamped = {**ckpt, "provenance": {**ckpt["provenance"], "code": code,
                                          "trained_with_code": ckpt["provenance"].get("trained_with_code", before)}}
        checkpoint.save_atomic(stamped, path)
        again = checkpoint.load(path)
        assert again["provenance"]["code"] == code
        assert same({k: v for k, v in again.items() if k != "provenance"}, {k: v for k, v in ckpt.items() if k != "provenance"}), path
    return before


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Record finished networks as made by today's weight-deciding code (after a change shown not to alter training).")
    p.add_argument("folders", nargs="+", type=Path, help="folders searched for weights.pt (e.g. reports/cpu/models)")
    p.add_argument("--write", action="store_true", help="rewrite the fingerprints (default: list what would change)")
    args = p.parse_args(argv)
    code = weights_fingerprint()
    for folder in args.folders:
        for path in sorted(folder.rglob(checkpoint.WEIGHTS)):
            before = restamp(path, code, args.write)
            print(f"{path}: {'already ' + code if before is None else f'{before} -> {code}' + ('' if args.write else ' (not written)')}")


if __name__ == "__main__":
    main()
