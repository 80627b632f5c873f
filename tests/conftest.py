"""One torch thread per test worker.

`make unit` runs the suite in two pytest-xdist workers on two cores. Each worker would otherwise
start as many torch threads as there are cores, four busy threads on two cores: the tests' small
tensors then spend most of their time waiting for a core (a float64 power iteration ran 30 to 70
times slower than alone). One thread per worker uses each core once. A test that needs another
count sets it itself (``sdnet.threads.one_thread`` and the like restore it).

The end-to-end group's longest tests are collected first (:data:`LONGEST_FIRST`): pytest-xdist
hands tests out in collection order, and a long test started last is the group's wall time."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# The longest end-to-end tests, longest first (measured in `make e2e` on 2 cores: a fresh clone's
# documented `dvc exp run` block, then the pipeline on a bare box, the GPU commands and the released
# profile's two chapter runs; every other e2e test takes under a minute).
LONGEST_FIRST = (
    "test_the_documented_commands_that_change_parameters_run_as_pasted",
    "test_the_pipeline_runs_on_a_bare_box_then_dvc_finishes_it",
    "test_the_gpu_commands_return_small_results_that_dvc_finishes_at_home",
    "test_a_committed_studys_networks_run_chapters_3_to_5_on_the_official_files",
    "test_the_released_profile_runs_end_to_end_on_released_files",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.originalname, len(rank)))  # stable: the rest keep their order
