"""The whole pipeline, end to end, as the remote-GPU workflow of docs/gpu.md runs it, dry-run on a CPU.

The repository is copied to a temporary folder. The `fast` profile (the one-GPU study) is run
with tiny sizes set from the command line: first `python -m sdnet.pipeline run` (no DVC, no
Jupyter: what a bare GPU box runs), then `dvc commit` records what it wrote and `dvc repro` runs
only the chapters' notebooks on it. So a GPU run cannot fail on a typo in the profile, a stage or
the runner. The data are real CIFAR-10/100 pixels (../shared/data/cifar-mini, official checksum
verification off since those files are subsets) when present, else the embedded synthetic set.
Afterwards `dvc status` must be clean, and touching a module must make exactly the stages that
import it out of date.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import MINI, ROOT, TINY_CHAPTERS, settings, skip_local_state
from sdnet.pipeline import load_stages, stage_code
from sdnet.provenance import weights_code

pytestmark = pytest.mark.e2e

DATA = ["profiles.fast.data.datasets=[cifar10,cifar100]", f"profiles.fast.data.root={MINI}", "profiles.fast.data.verify=false",
        "profiles.fast.data.limit=300"] if MINI.is_dir() \
    else ["profiles.fast.data.datasets=[synthetic]", "profiles.fast.data.limit=256"]
# The fast profile as it is, shrunk to seconds: only sizes change, every section stays.
TINY = DATA + settings("fast", {
    "train": {"width": 8, "epochs": 1, "warmup_epochs": 0, "batch_size": 128, "per_run": {}, "device": "cpu", "progress": False},
    **TINY_CHAPTERS,
}) + ["profile=fast"]


def dvc_finishes(work: Path, env: dict[str, str], runner_output: str) -> subprocess.CompletedProcess:
    """In ``work``, where `python -m sdnet.pipeline run` printed ``runner_output``: `dvc init`,
    `dvc commit` of the stages it ran, then `dvc repro` (asserted to succeed; its result returned)."""
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=work, env=env, check=True)
    computing = [line[1:].split("]")[0] for line in runner_output.splitlines() if line.startswith("[") and "done in" not in line]
    commit = subprocess.run([*dvc, "commit", "-f", *computing], cwd=work, env=env, capture_output=True, text=True)
    assert commit.returncode == 0, commit.stdout[-3000:] + commit.stderr[-3000:]
    repro = subprocess.run([*dvc, "repro"], cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    return repro


def test_the_pipeline_runs_on_a_bare_box_then_dvc_finishes_it(tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=skip_local_state)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(work)}

    # 1. The bare box: the computing stages, with the profile changed from the command line.
    runner = [sys.executable, "-m", "sdnet.pipeline", "run", "--profile", "fast", *(f"--set={s}" for s in TINY)]
    result = subprocess.run(runner, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "left for `dvc repro`" in result.stdout
    reports = work / "reports" / "fast"
    datasets = ["cifar10", "cifar100"] if MINI.is_dir() else ["synthetic"]
    for run in ["resnet18", "sdnet18", "sdnet18_all", "sdnet18_all_noshortcut"]:
        summary = json.loads((reports / "train" / f"{run}.json").read_text())
        assert summary["trained"] and set(summary["datasets"]) == set(datasets)
    if MINI.is_dir():
        assert summary["datasets"]["cifar10"]["seeds"]["0"]["dataset"] == "CIFAR-10"
    assert json.loads((reports / "train" / "sdnet34.json").read_text())["trained"] is False  # listed, not run
    assert not (reports / "notebooks").exists()  # the notebooks are for dvc repro, with Jupyter

    # 2. Back on a machine with DVC: record what the runner wrote, then let DVC run the rest.
    dvc = [sys.executable, "-m", "dvc"]
    repro = dvc_finishes(work, env, result.stdout)
    ran = {line.split("'")[1] for line in repro.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"explain_layer", "tabulate_accuracy", "tabulate_noise", "tabulate_attacks", "visualize", "summarize"}, ran

    for nb in ["01_csc_layer", "02_classification", "03_noise_robustness", "04_adversarial", "05_visualization"]:
        assert (reports / "notebooks" / f"{nb}.ipynb").is_file() and (reports / "tables" / nb / "verdict.md").is_file()
    table1 = (reports / "tables" / "02_classification" / "table1.md").read_text()
    assert "not run at this profile: resnet34 on" in table1
    assert ("CIFAR-100" in table1) == MINI.is_dir()
    attacks = (reports / "results" / "attacks" / "attacks.csv").read_text()
    assert "apgd-dlr" in attacks and "worst case" in attacks
    assert "worst case" in (reports / "RESULTS.md").read_text()

    # 3. Nothing left to do (only dvc.yaml's stages: data.dvc pins the official CIFAR files,
    #    which are not in data/ here, so DVC rightly reports that one as missing).
    status = subprocess.run([*dvc, "status", "dvc.yaml"], cwd=work, env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout

    # 4. Touching a module or a notebook makes exactly the stages that import it (directly or not)
    #    out of date, and only the code that decides the weights (and the train stage's own
    #    module and the parameters' schema, which rerun it in seconds) reruns train@: the
    #    evaluation, the paper's numbers, the released-file loader, the study, the chapters'
    #    modules and the notebooks rerun evaluate@ and the chapters, never train@.
    stages = load_stages(work)
    trains = {s.name for s in stages if s.name.startswith("train@")}
    sources = sorted(p.relative_to(work).as_posix() for p in [*(work / "sdnet").rglob("*.py"), *(work / "notebooks").glob("*.ipynb")]
                     if "__pycache__" not in p.parts)
    # Every source touched at once and one `dvc status`: each stale stage names the deps that
    #    changed, so the stages a source makes stale are those that name it (as one touch each would).
    originals = {source: (work / source).read_bytes() for source in sources}
    for source, original in originals.items():
        (work / source).write_bytes(original + (b"\n# touched\n" if source.endswith(".py") else b"\n"))
    status = subprocess.run([*dvc, "status", "dvc.yaml", "--json"], cwd=work, env=env, capture_output=True, text=True)
    for source, original in originals.items():
        (work / source).write_bytes(original)
    changed = {stage: {path for entry in entries if isinstance(entry, dict) for path in entry.get("changed deps", {})}
               for stage, entries in json.loads(status.stdout).items()}
    codes = {s.name: stage_code(work, s) for s in stages}  # each stage's import closure, computed once
    retrains = set()
    for source in sources:
        stale = {stage for stage, paths in changed.items() if source in paths}
        expected = {s.name for s in stages if source in codes[s.name] or source in s.deps}
        assert stale == expected, (source, stale, expected)
        if stale & trains:
            assert stale >= trains, source  # a module that decides the weights decides them for every run
            retrains.add(source)
    assert retrains == weights_code(work) | {"sdnet/stages/__init__.py", "sdnet/stages/train.py", "sdnet/params.py"}
    for source in ["sdnet/chapters/paper.py", "sdnet/released.py", "sdnet/study.py", "sdnet/evaluate.py", "sdnet/strict_json.py",
                   "sdnet/robustness.py", "sdnet/attacks.py", "sdnet/adaptive.py", "sdnet/analysis.py",
                   "sdnet/chapters/figures.py", "sdnet/stages/evaluate.py", "notebooks/02_classification.ipynb"]:
        assert source in sources and source not in retrains, source
    assert {"sdnet/csc.py", "sdnet/models.py", "sdnet/train.py"} <= retrains


# The GPU box's two commands (scripts/remote_gpu.sh;
# docs/gpu.md, "On a machine lent for minutes, without DVC"), exactly as a lease runs them, on the
# CPU with the tiny sizes above: the script applies REMOTE_SET after its own settings, so TINY's
# data and sizes win.
REMOTE = {
    "REMOTE_DEVICE": "cpu", "REMOTE_SET": " ".join([*TINY, "profiles.fast.data.limit=200"]), "REMOTE_BENCH": "--quick",
    "REMOTE_TESTS": "tests/test_cuda.py::test_channels_last_gives_the_same_results",
}
FIRST = ["tests", "bench", "train@resnet18", "evaluate@resnet18", "train@sdnet18", "evaluate@sdnet18", "sweep_noise"]
SECOND = ["attack", "train@sdnet18_all", "evaluate@sdnet18_all", "train@sdnet18_all_noshortcut"]
# A CPU is slower than the GPU the stages' limits were sized for: 5 minutes each here.
REMOTE.update({f"REMOTE_LIMIT_{name.replace('@', '_')}": "300" for name in FIRST + SECOND})


def stage_lines(log: Path) -> list[tuple[str, str]]:
    """(stage, what happened) from the script's own log: '[12 s] train@sdnet18: done in 9 s ...'."""
    lines = [line.split("] ", 1)[1] for line in log.read_text().splitlines()]
    return [(line.split(":")[0], line.split(": ", 1)[1]) for line in lines if ": done" in line or ": CUT" in line or ": FAILED" in line]


def test_the_gpu_commands_return_small_results_that_dvc_finishes_at_home(tmp_path):
    import tarfile

    box, home, out = tmp_path / "box", tmp_path / "home", tmp_path / "out"
    for folder in (box, home):
        shutil.copytree(ROOT, folder, ignore=skip_local_state)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **REMOTE}

    # 1. The first command: every stage in order, each finished one in the tar.
    first = subprocess.run(["scripts/remote_gpu.sh", str(out), "first"], cwd=box, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert [name for name, _ in stage_lines(out / "remote_gpu-first.log")] == FIRST
    # 2. The second, with its last stage cut by its time limit: the stages before it still come back.
    cut = {**env, "REMOTE_LIMIT_train_sdnet18_all_noshortcut": "1"}
    second = subprocess.run(["scripts/remote_gpu.sh", str(out), "second"], cwd=box, env=cut, capture_output=True, text=True, timeout=600)
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    lines = stage_lines(out / "remote_gpu-second.log")
    assert [name for name, _ in lines] == SECOND
    assert all(what.startswith("done") for _, what in lines[:-1]) and lines[-1][1] == "CUT at its limit of 1 s"
    reports = "./reports/fast"
    for part, expected in [
        ("first", ["./params.yaml", "./reports/benchmarks/cpu.json", f"{reports}/train/resnet18.json", f"{reports}/curves/sdnet18.csv",
                   f"{reports}/results/noise/sweep.csv", "./logs/remote-gpu/first/train@sdnet18.log"]),
        ("second", ["./params.yaml", f"{reports}/results/attacks/attacks.csv", f"{reports}/train/sdnet18_all.json",
                    "./logs/remote-gpu/second/train@sdnet18_all_noshortcut.log"]),
    ]:
        results = out / f"results-{part}.tar"
        assert results.stat().st_size < 16 * 2**20
        names = tarfile.open(results).getnames()
        assert set(expected) <= set(names), set(expected) - set(names)
        assert not [n for n in names if n.endswith(".pt")]  # no weights (45 MB at width 64): the chapters at home do not read them
    assert f"{reports}/train/sdnet18_all_noshortcut.json" not in tarfile.open(out / "results-second.tar").getnames()

    # 3. At home: unpack both, record what the box ran, and let DVC run the chapters on it.
    for part in ("first", "second"):
        subprocess.run(["tar", "xf", str(out / f"results-{part}.tar")], cwd=home, check=True)
    finished = " ".join((home / "logs" / "remote-gpu" / part / "finished").read_text() for part in ("first", "second")).split()
    assert set(finished) == set(FIRST[2:]) | {"attack", "train@sdnet18_all", "evaluate@sdnet18_all"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=home, env=env, check=True)
    commit = subprocess.run([*dvc, "commit", "-f", *finished], cwd=home, env=env, capture_output=True, text=True)
    assert commit.returncode == 0, commit.stdout[-3000:] + commit.stderr[-3000:]
    chapters = ["tabulate_accuracy", "tabulate_noise", "tabulate_attacks"]  # chapters 1 and 5 read the weights (docs/gpu.md)
    repro = subprocess.run([*dvc, "repro", *chapters], cwd=home, env=env, capture_output=True, text=True, timeout=900)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    ran = {line.split("'")[1] for line in repro.stdout.splitlines() if line.startswith("Running stage")}
    not_trained = {"train@resnet34", "train@sdnet34", "train@sdnet34_all", "train@sdnet18_all_noshortcut"}
    recorded = {stage.replace("train@", "evaluate@") for stage in not_trained}
    assert ran == set(chapters) | not_trained | recorded, ran  # nothing trained or computed again at home
    for stage in not_trained:
        assert json.loads((home / "reports" / "fast" / "train" / f"{stage.split('@')[1]}.json").read_text())["trained"] is False
    table_d1 = (home / "reports" / "fast" / "tables" / "02_classification" / "table_d1.md").read_text()
    assert "| sdnet18_all " in table_d1
    assert "not run at this profile: sdnet18_all_noshortcut" in table_d1  # the cut network is said not run
