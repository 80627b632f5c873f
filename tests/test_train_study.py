"""scripts/train_study.py: the order in which a study trained over several working periods trains
its networks (seed-major, -All last), and that each is trained where its train@ stage would."""

import importlib.util

from helpers import ROOT
from sdnet.params import load_params

spec = importlib.util.spec_from_file_location("train_study", ROOT / "scripts" / "train_study.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_the_first_seed_of_every_compared_run_comes_first_and_the_all_networks_last():
    params = load_params(ROOT / "params.yaml", "cpu")
    todo = script.order(params, None)
    dataset = params.active.data.datasets[0]
    assert todo == [("resnet18", dataset, 0), ("sdnet18", dataset, 0), ("resnet18", dataset, 1), ("sdnet18", dataset, 1),
                    ("resnet18", dataset, 2), ("sdnet18", dataset, 2), ("sdnet18_all", dataset, 0), ("sdnet18_all_noshortcut", dataset, 0)]
    assert script.order(params, ["sdnet18:1", "resnet18:0"]) == [("resnet18", dataset, 0), ("sdnet18", dataset, 1)]


def test_each_network_goes_where_its_stage_trains_it():
    from sdnet.study import load_study

    params, study = load_params(ROOT / "params.yaml", "cpu"), load_study("cpu", root=ROOT)
    for run, dataset, seed in script.order(params, None):
        assert params.run_dir(run, ROOT, dataset, seed) == study.model_dir(run, dataset, seed)
        assert params.train_config(run, ROOT, dataset, seed) == study.train_config(run, dataset, seed)


def test_docs_cpu_study_carries_the_table_of_the_committed_networks():
    """docs/cpu-study.md's table of parts is what the committed networks record, not typed."""
    params = load_params(ROOT / "params.yaml", "cpu")
    page = (ROOT / script.PAGE).read_text()
    assert script.parts_table(params, ROOT) in page, "docs/cpu-study.md's parts table is out of date: run `python scripts/train_study.py --profile cpu --table --write`"
