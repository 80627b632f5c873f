"""Each stage command of the pipeline, in-process on a tiny repository (tests/helpers.py): what it
writes, what it refuses, and what it leaves alone. The whole pipeline through DVC is checked once,
end to end, in tests/test_pipeline.py; here every stage is checked on its own, in seconds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import write_tiny_repository
from sdnet import hits
from sdnet.config import ConfigError
from sdnet import evaluate as evaluation  # (not its test_metrics by name: pytest would collect it)
from sdnet.params import load_params
from sdnet.stages import attack as attack_stage
from sdnet.stages import evaluate as evaluate_stage
from sdnet.stages import noise as noise_stage
from sdnet.stages import summarize as summarize_stage
from sdnet.stages import train as train_stage
from sdnet.study import load_study


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny repository whose quick profile trains ResNet-18 and SDNet-18 (width 8, one epoch on
    256 synthetic images), trained once for this module by the train stage."""
    root = write_tiny_repository(tmp_path_factory.mktemp("tiny"))
    params = load_params(root / "params.yaml")
    for run in ("resnet18", "sdnet18"):
        train_stage.run_training(params, root, run)
    return root


def test_train_writes_each_network_and_its_curve_and_says_what_it_does_not_train(tiny):
    params = load_params(tiny / "params.yaml")
    models = tiny / "reports" / "quick" / "models"
    for run in ("resnet18", "sdnet18"):
        folder = models / run / "synthetic" / "seed0"
        assert {p.name for p in folder.iterdir()} == {"weights.pt", "history.csv", "training.json"}
        curve = pd.read_csv(tiny / "reports" / "quick" / "curves" / f"{run}.csv")
        assert list(curve[["dataset", "seed", "epoch"]].itertuples(index=False, name=None)) == [("synthetic", 0, 1)]
    assert train_stage.run_training(params, tiny, "sdnet34") == []
    assert json.loads((models / "sdnet34" / "not-trained.json").read_text()) == {"run": "sdnet34", "profile": "quick", "trained": False}
    with pytest.raises(ConfigError, match="unknown run"):
        train_stage.run_training(params, tiny, "sdnet19")


def test_a_rerun_keeps_the_trained_network_and_prunes_what_the_profile_dropped(tiny):
    params = load_params(tiny / "params.yaml")
    weights = tiny / "reports" / "quick" / "models" / "sdnet18" / "synthetic" / "seed0" / "weights.pt"
    before = weights.stat().st_mtime_ns
    stray = weights.parent.parent / "seed7"
    stray.mkdir()
    (stray / "weights.pt").write_bytes(b"from a profile with more seeds")
    assert train_stage.run_training(params, tiny, "sdnet18") == [weights.parent]
    assert weights.stat().st_mtime_ns == before  # made by today's code: returned at once, not retrained
    assert not stray.exists()


def test_a_run_given_as_a_file_is_recorded_not_trained(tiny, tmp_path):
    given = tiny / "reports" / "quick" / "models" / "resnet18" / "synthetic" / "seed0" / "weights.pt"
    root = write_tiny_repository(tmp_path / "given", train={"runs": ["sdnet18"]}, checkpoints={"resnet18": str(given)})
    params = load_params(root / "params.yaml")
    assert params.active.checkpoints.resnet18 == str(given)
    assert train_stage.run_training(params, root, "resnet18") == []
    record = json.loads((root / "reports" / "quick" / "models" / "resnet18" / "given.json").read_text())
    assert record["file"] == str(given) and record["bytes"] == given.stat().st_size and len(record["sha256"]) == 64


def test_one_network_of_a_run_takes_flags_and_refuses_them_without_out(tiny, monkeypatch, capsys):
    monkeypatch.chdir(tiny)
    out = tiny / "one"
    train_stage.main(["sdnet18", "--out", str(out), "--epochs", "1", "--lam", "0.2"])
    record = json.loads(capsys.readouterr().out)
    assert record["lam"] == 0.2 and (out / "weights.pt").is_file()
    with pytest.raises(SystemExit) as exited:
        train_stage.main(["sdnet18", "--epochs", "2"])
    assert exited.value.code == 2 and "give --out" in capsys.readouterr().err


def test_evaluate_scores_every_seed_in_float32_as_the_trainer_s_test_metrics(tiny):
    study = load_study(root=tiny)
    summary = evaluate_stage.evaluate_run(study, "sdnet18")
    written = json.loads((tiny / "reports" / "quick" / "train" / "sdnet18.json").read_text())
    assert written == json.loads(json.dumps(summary))
    seed = summary["datasets"]["synthetic"]["seeds"][0]
    direct = evaluation.test_metrics(study.train_config("sdnet18"), study.model_dir("sdnet18"))
    assert seed["top1"] == direct["top1"] and seed["loss"] == direct["loss"]
    assert summary["datasets"]["synthetic"]["top1_mean"] == seed["top1"] and summary["datasets"]["synthetic"]["top1_std"] is None
    assert evaluate_stage.evaluate_run(study, "sdnet34") == {"run": "sdnet34", "profile": "quick", "trained": False, "seeds": [0], "datasets": {}}


def test_sweep_noise_writes_its_tables_with_per_image_hits_aligned_to_the_rows(tiny):
    study = load_study(root=tiny)
    tables = noise_stage.sweep_noise(study, progress=False)
    folder = tiny / "reports" / "quick" / "results" / "noise"
    assert {p.name for p in folder.iterdir()} == {"sweep.csv", "adaptive.csv", "steps.csv", "filters.csv", "stem.csv", "hits.npz", "about.json"}
    sweep = pd.read_csv(folder / "sweep.csv")
    assert "correct" not in sweep.columns and len(sweep) == len(tables["sweep"])
    stored = hits.load(folder / "hits.npz")
    assert len(stored["sweep"]) == len(sweep) and len(stored["filters"]) == len(pd.read_csv(folder / "filters.csv"))
    for row, got in zip(sweep.itertuples(), stored["sweep"]):  # every row's accuracy is its own images' hits
        assert len(got) == row.images and 100 * got.mean() == pytest.approx(row.top1)
    halves = stored["subset.in_half1"][0]
    about = json.loads((folder / "about.json").read_text())
    assert about["halves"] == [int((~halves).sum()), int(halves.sum())] and about["test_images"] == len(halves) == 60
    assert set(sweep["model"]) == {"resnet18", "sdnet18"} and sorted(set(sweep["lam"])) == [0.1, 0.5, 1.0]
    assert about["sdnet"] == "sdnet18" and about["baseline"] == "resnet18" and "given" not in about


def test_attack_writes_both_defences_per_seed_radius_and_half_with_every_rows_images(tiny):
    study = load_study(root=tiny)
    attack_stage.attack(study, progress=False)
    folder = tiny / "reports" / "quick" / "results" / "attacks"
    assert {p.name for p in folder.iterdir()} == {"attacks.csv", "checks.csv", "hits.npz", "about.json"}
    table = pd.read_csv(folder / "attacks.csv")
    radii = {("Linf", 0.03), ("Linf", 0.5), ("L2", 0.5), ("L2", 20.0)}
    assert set(zip(table["norm"], table["eps"])) == radii and set(table["half"]) == {0, 1} and set(table["seed"]) == {0}
    values = table.groupby("defence")["value"].unique().map(sorted).to_dict()
    assert values == {"SDNet-18": [0.1, 0.5], "ResNet-18 + blur": [0.0, 0.5]}  # sigma 0: the bare ResNet-18
    blur = table[table["defence"] == "ResNet-18 + blur"]
    assert (blur["cross"] == blur["transfer"]).all()  # the blur's transfer examples are crafted on the bare ResNet-18
    stored = hits.load(folder / "hits.npz")
    for score in ("clean", "white_box", "transfer", "cross"):  # every row's accuracy is its own images' hits
        assert len(stored[f"attacks.{score}"]) == len(table)
        for row, got in zip(table.itertuples(), stored[f"attacks.{score}"]):
            assert len(got) == row.images and 100 * got.mean() == pytest.approx(getattr(row, score))
    checks = pd.read_csv(folder / "checks.csv")
    stronger = checks[checks["check"] == "stronger"]
    assert set(zip(stronger["norm"], stronger["eps"])) == {("Linf", 0.03), ("L2", 0.5)}
    assert set(zip(stronger["steps"], stronger["restarts"])) == {(2, 1), (4, 2)}  # the profile's PGD, and more steps with restarts
    assert sorted(set(checks[checks["check"] == "radius"]["eps"])) == [0.03, 0.5] and set(checks["images"]) == {4}


def test_attack_resumes_from_its_finished_parts_and_redoes_only_what_changed(tiny, monkeypatch):
    """A second run finds every part done (nothing is attacked); a new lambda redoes SDNet-18's
    parts and leaves the blur's."""
    import sdnet.attacks

    study = load_study(root=tiny)
    attack_stage.attack(study, progress=False)
    folder = tiny / "reports" / "quick" / "results" / "attacks"
    before = (folder / "attacks.csv").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished part was attacked again")

    with monkeypatch.context() as m:
        for name in ("attack_vs_setting", "survivors", "transferred"):
            m.setattr(sdnet.attacks, name, refuse)
        attack_stage.attack(study, progress=False)
    assert (folder / "attacks.csv").read_text() == before

    params = (tiny / "params.yaml").read_text()
    changed = yaml.safe_load(params)
    changed["profiles"]["quick"]["adversarial"]["lambdas"] = [0.1, 0.7]
    (tiny / "params.yaml").write_text(yaml.safe_dump(changed))
    try:
        attacked = []
        real = sdnet.attacks.attack_vs_setting
        monkeypatch.setattr(sdnet.attacks, "attack_vs_setting", lambda model, *a, **k: attacked.append(type(model).__name__) or real(model, *a, **k))
        attack_stage.attack(load_study(root=tiny), progress=False)
        assert attacked and "Filtered" not in attacked  # SDNet-18's parts again, not the blur's
        table = pd.read_csv(folder / "attacks.csv")
        assert sorted(table[table["defence"] == "SDNet-18"]["value"].unique()) == [0.1, 0.7]
    finally:
        (tiny / "params.yaml").write_text(params)
        attack_stage.attack(load_study(root=tiny), progress=False)  # the module's other tests see the original results


def test_summarize_refuses_a_chapter_that_did_not_run(tiny):
    study = load_study(root=tiny)
    with pytest.raises(FileNotFoundError, match="lacks tables/01_csc_layer/verdict.md"):
        summarize_stage.write_results(study)


def test_a_stage_command_names_an_unknown_run(tiny, monkeypatch, capsys):
    monkeypatch.chdir(tiny)
    with pytest.raises(SystemExit) as exited:
        evaluate_stage.main(["sdnet19"])
    assert exited.value.code == 2 and "unknown run 'sdnet19'" in capsys.readouterr().err


def test_the_results_writer_keeps_only_this_run_s_tables(tmp_path):
    from types import SimpleNamespace

    from sdnet.stages.common import save_results

    study = SimpleNamespace(results=lambda name: tmp_path / name, given_file=lambda run: None)
    frame = pd.DataFrame({"x": [1, 2], "correct": [np.array([True, False]), np.array([True, True])]})
    save_results(study, "demo", {"a": frame, "b": frame}, {"k": 1}, ["sdnet18"], in_half1=np.array([False, True]))
    save_results(study, "demo", {"a": frame, "b": None}, {"k": 2}, ["sdnet18"], in_half1=np.array([False, True]))
    folder = tmp_path / "demo"
    assert {p.name for p in folder.iterdir()} == {"a.csv", "hits.npz", "about.json"}
    assert list(pd.read_csv(folder / "a.csv").columns) == ["x"] and json.loads((folder / "about.json").read_text()) == {"k": 2}
    assert [list(h) for h in hits.load(folder / "hits.npz")["a"]] == [[True, False], [True, True]]
