"""The "Does it depend on the regime?" table (sdnet.regime), made from small synthetic studies.

The expected cells are written out by hand from the module's rules (each study's own verdict, cut
to its leading words and first number), so the test checks the rules, not the code against itself.
"""

import json

import pytest
import yaml

from helpers import write_verdict_table
from sdnet import regime

NOISE, ATTACK = "03_noise_robustness", "04_adversarial"
TUNED = "with lambda tuned at test time, SDNet-18 is more robust to noise than ResNet-18"
RIVAL = ("(ours) SDNet-18's tuned lambda beats ResNet-18 with a tuned test-time denoiser, for a defender who knows the noise and its "
         "severity")
RAISES = "a larger test-time lambda raises robust accuracy substantially (the paper's protocol: crafted at the training lambda)"
BLUR_WB = "(ours) at equal clean accuracy, SDNet-18's test-time lambda earns more than an unknown blur earns ResNet-18, white-box"


def commit_study(root, profile, data, width, verdicts):
    """reports/<profile>/ as a committed study: pipeline and lock files, training records, verdict tables."""
    reports = root / "reports" / profile
    (reports / "train").mkdir(parents=True)
    train = {"width": width, "epochs": 48, "seeds": [0, 1, 2]}
    lock = {"stages": {"train@resnet18": {"params": {"params.yaml": {f"profiles.{profile}.train": train}}}}}
    (reports / "dvc.yaml").write_text("stages: {}\n")
    (reports / "dvc.lock").write_text(yaml.safe_dump(lock))
    for run, top1 in (("resnet18", 88.0), ("sdnet18", 88.3)):
        seeds = {str(k): {"model": run, "dataset": data, "top1": top1} for k in range(3)}
        (reports / "train" / f"{run}.json").write_text(json.dumps({"run": run, "datasets": {"x": {"seeds": seeds, "top1_mean": top1, "top1_std": 0.3}}}))
    for chapter, rows in verdicts.items():
        write_verdict_table(reports / "tables" / chapter, [(claim, "p", "h", verdict) for claim, verdict in rows])


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"profile": "quick", "profiles": {p: {} for p in ("quick", "cpu", "wide", "mini-exact")}}))
    commit_study(tmp_path, "cpu", "CIFAR-10 (JPEG copy)", 16, {
        NOISE: [(TUNED, "holds: +5.6 [+2.5, +8.8] points (over 3 seeds and the images) (held out, lambda per condition)"),
                (RIVAL, "does not hold: -2.6 [-4.8, -0.3] points, ResNet-18 + blur better beyond noise (over 3 seeds and the images)"),
                (RIVAL.replace("the noise and its severity", "nothing"), "holds: +9.9 points")],  # another defender: not a row
        ATTACK: [(RAISES, "holds at clean 80% (a gain above 5 points, beyond noise): Linf 8/255: holds: +10.2 [+4.1, +16.2] points"),
                 (BLUR_WB, "does not hold: SDNet-18 minus the blur at clean 80%: -4.1 points at Linf 8/255 (does not hold); "
                           "the blur earns more at every clean level, beyond noise")],
    })
    commit_study(tmp_path, "mini-exact", "CIFAR-10", 16, {NOISE: [(TUNED, "not shown: +1.7 [-0.4, +3.8] points (over 3 seeds and the images)")]})
    return tmp_path


def test_each_study_is_a_column_of_its_own_verdicts_cut_to_their_first_number(repo):
    lines = regime.table(repo).splitlines()
    assert lines[0] == ("| verdict | JPEG copy, width 16 (`cpu`) | JPEG copy, width 32 (`wide`) | mini set, exact pixels (`mini-exact`) "
                        "| mini set, JPEG-trained (`mini-jpeg`) |")
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines[2:8]}
    tuned, rival, raises, _, _, blur_wb = rows.values()
    assert tuned == ["**holds**: +5.6 [+2.5, +8.8] points", "not run", "**not shown**: +1.7 [-0.4, +3.8] points", "not run |"]
    assert rival[0] == "**does not hold**: -2.6 [-4.8, -0.3] points"
    assert raises[0] == "**holds at clean 80%**: Linf 8/255: holds: +10.2 [+4.1, +16.2] points" and raises[2] == "not run"
    assert blur_wb[0] == "**does not hold**: SDNet-18 minus the blur at clean 80%: -4.1 points at Linf 8/255"
    assert list(rows) == [f"[{int(chapter[:2])}] {question}" for question, chapter, _ in regime.ROWS]


def test_the_notes_give_each_committed_studys_conditions_and_name_those_not_run(repo):
    notes = [line for line in regime.table(repo).splitlines() if line.startswith("- ")]
    assert notes[0] == "- `cpu`: CIFAR-10 (JPEG copy), width 16, 48 epochs, 3 seeds (ResNet-18 88.00 ± 0.30% and SDNet-18 88.30 ± 0.30% top-1)."
    assert notes[1].startswith("- `mini-exact`: CIFAR-10, width 16")
    assert notes[2].startswith("- `wide`: no committed run yet") and notes[3] == "- `mini-jpeg`: not a profile of params.yaml yet."


def test_the_table_is_written_to_its_results_file_and_between_readmes_markers(repo):
    (repo / "README.md").write_text("# T\n\n<!-- does-it-depend:regimes -->\nstale table\n<!-- /does-it-depend:regimes -->\n\nAfter.\n")
    regime.write(repo)
    text = (repo / "README.md").read_text()
    assert "stale table" not in text and regime.table(repo) in text and text.endswith("\nAfter.\n")
    assert regime.table(repo) in (repo / regime.TABLE).read_text()
