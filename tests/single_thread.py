"""One torch thread for a block, shared by tests that train or time small models."""

import contextlib

import torch


@contextlib.contextmanager
def one_thread():
    """Fixed summation order, and no waiting for a core busy with other jobs, inside the block."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
