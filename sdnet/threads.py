"""One torch thread for a block of work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the previous count.

    For work made of many small tensor ops (generating the synthetic set, tiny test models, the
    benchmark's smoke test): extra threads only add synchronisation, and on a 2-core machine shared
    with other jobs they wait for a busy core (we measured it 50x slower). A fixed thread count also
    fixes the summation order of reductions, hence the bytes, whatever the machine's core count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
