"""Chapter 2's tables and verdicts (sdnet.chapters.classification), on hand-made records."""

import math

import pandas as pd
import pytest

from sdnet.chapters import classification as cl


def summary(top1_per_seed: list[float], parameters: int = 700_000, epochs: int = 40) -> dict:
    """A run's record on one dataset as the evaluate stage writes it (sample std over seeds)."""
    n = len(top1_per_seed)
    mean = sum(top1_per_seed) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in top1_per_seed) / (n - 1)) if n > 1 else None
    seeds = {str(k): {"top1": v, "top5": 99.0, "parameters": parameters, "epochs": epochs,
                      "precisions": ["bf16"], "devices": ["cpu"]} for k, v in enumerate(top1_per_seed)}
    return {"seeds": seeds, "top1_mean": mean, "top1_std": std, "top5_mean": 99.0, "top5_std": 0.0 if n > 1 else None}


def curves(images_per_second: list[float], seeds: int = 1) -> pd.DataFrame:
    epochs = len(images_per_second)
    return pd.DataFrame({"dataset": "cifar10-jpeg", "seed": [s for s in range(seeds) for _ in range(epochs)],
                         "epoch": list(range(1, epochs + 1)) * seeds, "images_per_second": images_per_second * seeds,
                         "train_loss": [2.0 - 0.1 * e - 0.05 * s for s in range(seeds) for e in range(epochs)],
                         "train_top1": [10.0 * e for _ in range(seeds) for e in range(epochs)]})


@pytest.fixture
def records():
    runs = {
        "resnet18": {"trained": True, "datasets": {"cifar10-jpeg": summary([88.0, 88.2, 88.4])}},
        "sdnet18": {"trained": True, "datasets": {"cifar10-jpeg": summary([87.5, 87.6, 87.7])}},
        "sdnet18_all": {"trained": True, "datasets": {"cifar10-jpeg": summary([87.9])}},
        "sdnet18_all_noshortcut": {"trained": False, "datasets": {}},
        "resnet34": {"trained": False, "datasets": {}},
    }
    return cl.Records(
        runs=runs,
        curves={"resnet18": curves([1000.0, 1040.0, 100.0], seeds=3), "sdnet18": curves([900.0, 880.0, 50.0, 910.0], seeds=3),
                "sdnet18_all": curves([300.0, 310.0, 305.0])},
        per_run={"sdnet18_all": {"seeds": [0]}},
        shortcut={"resnet18": True, "sdnet18": True, "sdnet18_all": True, "sdnet18_all_noshortcut": False, "resnet34": True},
        model={"resnet18": "resnet18", "sdnet18": "sdnet18", "sdnet18_all": "sdnet18_all",
               "sdnet18_all_noshortcut": "sdnet18_all", "resnet34": "resnet34"},
    )


def test_the_difference_of_two_means_and_its_standard_error(records):
    d = cl.difference(records.ours("sdnet18", "cifar10-jpeg"), records.ours("resnet18", "cifar10-jpeg"))
    # means 87.6 and 88.2; sample standard deviations 0.1 and 0.2 over 3 seeds each
    assert d.diff == pytest.approx(-0.6)
    assert d.standard_error == pytest.approx(math.sqrt(0.1**2 / 3 + 0.2**2 / 3))
    assert d.seeds == 3
    assert cl.difference(records.ours("sdnet18_all", "cifar10-jpeg"), records.ours("sdnet18", "cifar10-jpeg")).standard_error is None


@pytest.mark.parametrize("diff, se, kind", [
    (-0.6, 0.15, "holds"),          # -0.9 .. -0.3: inside +-1
    (-0.6, 0.25, "not shown"),      # -1.1 .. -0.1: reaches past -1
    (-1.6, 0.25, "does not hold"),  # -2.1 .. -1.1: entirely beyond
    (1.6, 0.25, "does not hold"),
    (0.0, None, "not shown"),       # one seed
])
def test_equivalence_verdict_reads_the_interval_of_two_standard_errors(diff, se, kind):
    verdict = cl.equivalence_verdict(cl.Difference(diff, se, 1 if se is None else 3))
    assert verdict.split(":")[0] == kind
    assert "±" not in verdict  # ± is kept for mean ± std over seeds in the tables


def test_mean_std_says_seeds_and_leaves_one_seed_bare(records):
    assert cl.accuracy_cell(records.ours("resnet18", "cifar10-jpeg")) == "88.20 ± 0.20 (3 seeds)"
    assert cl.accuracy_cell(records.ours("sdnet18_all", "cifar10-jpeg")) == "87.90"
    assert cl.accuracy_cell(None) is None


def test_throughput_is_the_median_epoch_so_a_slowed_epoch_does_not_count(records):
    assert records.images_per_second("resnet18", "cifar10-jpeg") == 1000.0
    assert records.images_per_second("sdnet18", "cifar10-jpeg") == pytest.approx(890.0)


def test_table1_rows_and_the_runs_not_trained(records):
    table, not_run = cl.table1(records, ["cifar10-jpeg"], ("resnet18", "resnet34", "sdnet18"))
    assert list(table["model"]) == ["resnet18", "sdnet18"]
    assert not_run == ["resnet34 on CIFAR-10 (JPEG copy)"]
    assert list(table["paper top-1"]) == [95.54, 95.20]  # the JPEG copy is put beside CIFAR-10
    assert list(table["train img/s"]) == [1000, 890]
    assert table["params (M)"].tolist() == [0.7, 0.7]


def test_table_d1_speed_is_relative_to_sdnet18_and_budgets_are_noted(records):
    table, not_run = cl.table_d1(records, ["cifar10-jpeg"], ("sdnet18", "sdnet18_all", "sdnet18_all_noshortcut"))
    rows = table.set_index("model")
    assert rows.loc["sdnet18_all", "speed vs SDNet-18"] == round(305.0 / 890.0, 2)
    assert rows.loc["sdnet18_all", "paper top-1 (released)"] == 95.02
    assert rows.loc["sdnet18_all", "note"] == "seeds=[0]"
    assert not_run == ["sdnet18_all_noshortcut on CIFAR-10 (JPEG copy)"]


def test_claims_judge_equivalence_accuracy_of_all_and_speed(records):
    rows = {row["claim"]: row["verdict"] for row in cl.claims(records, ["cifar10-jpeg"])}
    # -0.6, standard error 0.129: interval -0.86 .. -0.34 inside +-1
    assert rows["SDNet-18 is as accurate as ResNet-18"].startswith("holds: -0.60 points, standard error 0.13 over 3 seeds")
    assert rows["SDNet-18-All is about as accurate as SDNet-18 (within 2 points at equal epochs)"] == "holds: +0.30 points"
    assert rows["SDNet-18 trains much faster than SDNet-18-All"].startswith("holds")


def test_the_all_claims_are_not_judged_when_the_all_network_has_its_own_budget(records):
    budget = cl.Records(records.runs, records.curves, {"sdnet18_all": {"epochs": 2}}, records.shortcut, records.model)
    claims = [row["claim"] for row in cl.claims(budget, ["cifar10-jpeg"])]
    assert claims == ["SDNet-18 is as accurate as ResNet-18"]


def test_training_curves_band_is_the_range_over_seeds(records):
    loss = cl.training_curves(records, "cifar10-jpeg", "train_loss")["resnet18"]
    # seeds differ by 0.05 per seed: epoch 1 is 2.0, 1.95, 1.9
    assert loss.loc[1].tolist() == pytest.approx([1.95, 1.9, 2.0])
    assert list(loss.index) == [1, 2, 3]


def test_metrics_name_dataset_run_and_top1(records):
    assert cl.metrics(records, ["cifar10-jpeg"]) == {"cifar10-jpeg/resnet18/top1": 88.2, "cifar10-jpeg/sdnet18/top1": 87.6,
                                                     "cifar10-jpeg/sdnet18_all/top1": 87.9}
