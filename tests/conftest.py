"""One torch thread per test worker.

`make unit` runs the suite in two pytest-xdist workers on two cores. Each worker would otherwise
start as many torch threads as there are cores, four busy threads on two cores: the tests' small
tensors then spend most of their time waiting for a core (a float64 power iteration ran 30 to 70
times slower than alone). One thread per worker uses each core once. A test that needs another
count sets it itself (``sdnet.threads.one_thread`` and the like restore it)."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
