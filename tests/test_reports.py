"""The committed results of every committed profile are what its lock file recorded, and those of the
`cpu` profile are what the committed code and parameters produce, or say in their first lines which
stages older code made (sdnet.stale).

The `cpu` study has its own pipeline file, `reports/cpu/dvc.yaml` (dvc.yaml's stages at profile cpu,
sdnet.pipeline.own_pipeline), and beside it `reports/cpu/dvc.lock`, the lock file DVC wrote when it ran
the study: the hashes of every stage's code, parameters and outputs. `dvc status reports/cpu/dvc.yaml`
must find the outputs (notebooks, tables, figures, metrics and RESULTS.md under reports/cpu/) to be the
ones it recorded. Their code must be today's, unless RESULTS.md opens with the notice that
`python -m sdnet.stale cpu --write` makes, naming exactly the stages whose code or parameters changed
since, and README.md with its one-line summary. (The scratch copy leaves out the trained networks
under reports/<profile>/models/: the stages that read them are checked through their outputs.)
A change to a module the study runs fails this test until the study is rerun or the change declared.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from sdnet import stale

PROFILE = "cpu"

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not (ROOT / "reports" / PROFILE / "dvc.lock").is_file(), reason="no committed cpu results")]


def test_the_committed_cpu_results_are_those_of_the_committed_code_or_declared_stale():
    results = (ROOT / "reports" / PROFILE / "RESULTS.md").read_text()
    block = stale.read_notice(results, PROFILE)
    status = stale.dvc_status(ROOT, PROFILE, results_md=stale.strip_notice(results, PROFILE))
    # The outputs, notice aside, are those the run recorded: nothing was edited by hand.
    edited = stale.edited_outputs(status, PROFILE, ROOT)
    assert not edited, f"reports/{PROFILE} outputs differ from what its dvc.lock recorded: {edited}"
    changed = stale.stale_stages(status)
    if block is None:
        assert not changed, (
            f"reports/{PROFILE} was made by other code than today's (stages {sorted(changed)}): rerun the study "
            f"(`dvc repro reports/{PROFILE}/dvc.yaml`, docs/cpu-study.md) or declare it with `python -m sdnet.stale {PROFILE} --write`"
        )
    else:
        assert sorted(stale.declared_stages(block)) == sorted(changed), "the notice must name exactly the stale stages: rerun `python -m sdnet.stale --write`"
        assert block == stale.notice(PROFILE, changed, stale.made_by(ROOT, PROFILE)), "the notice is out of date: rerun `python -m sdnet.stale --write`"
    readme = (ROOT / "README.md").read_text()
    summary = stale.summary_notice(PROFILE, changed, stale.made_by(ROOT, PROFILE)) if block is not None else None
    assert stale.read_notice(readme, PROFILE) == summary, "README.md must carry the summary of RESULTS.md's notice (or none)"
    if block is not None:
        assert results.startswith(block), "the notice opens RESULTS.md"
        assert readme.index(summary) < readme.index("\n## "), "the notice comes before README's first section"


def test_every_committed_profiles_outputs_are_those_its_lock_file_recorded():
    profiles = stale.committed_profiles(ROOT)
    assert {"quick", "cpu"} <= set(profiles)
    for profile in set(profiles) - {PROFILE}:  # cpu: the test above
        edited = stale.edited_outputs(stale.dvc_status(ROOT, profile), profile, ROOT)
        assert not edited, f"reports/{profile} outputs differ from what {stale.lock_path(ROOT, profile).relative_to(ROOT)} recorded: {edited}"


def test_edited_outputs_are_found_and_the_networks_the_copy_lacks_are_not():
    status = {"reports/cpu/dvc.yaml:train@sdnet18": [{"changed outs": {"reports/cpu/models/sdnet18": "deleted"}}],
              "tabulate_noise": [{"changed deps": {"sdnet/chapters/figures.py": "modified"}}, {"changed outs": {"reports/cpu/tables/03_noise_robustness": "modified"}}],
              "summarize": ["always changed"]}
    status = {stale._stage_name(k): v for k, v in status.items()}
    assert stale.edited_outputs(status, "cpu") == {"tabulate_noise": ["reports/cpu/tables/03_noise_robustness"]}
    assert stale.stale_stages(status) == {"tabulate_noise": ["sdnet/chapters/figures.py"]}


def test_an_output_a_stage_gains_before_its_rerun_is_not_an_edit(tmp_path):
    """A stage declared stale whose new pipeline adds an output: the lock file never recorded it,
    so its absence is the pending rerun's, not an edit; an output the lock did record still is one."""
    (tmp_path / "reports" / "cpu").mkdir(parents=True)
    (tmp_path / "reports" / "cpu" / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "reports" / "cpu" / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"attack": {"outs": [{"path": "reports/cpu/results/attacks"}]}}}))
    status = {"attack": [{"changed outs": {"reports/cpu/results/attack-parts": "deleted"}}]}
    assert stale.edited_outputs(status, "cpu", tmp_path) == {}
    status["attack"][0]["changed outs"]["reports/cpu/results/attacks"] = "modified"
    assert stale.edited_outputs(status, "cpu", tmp_path) == {"attack": ["reports/cpu/results/attacks"]}


def _scratch_repository(tmp_path: Path) -> Path:
    """A copy of the repository's tracked files, results, lock files and the cpu study's networks (24 MB; no
    data), with DVC set up."""
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=lambda folder, names: {n for n in names if n in stale._LOCAL or (Path(folder) == ROOT and n == "data")})
    shutil.copytree(ROOT / "reports" / PROFILE / "models", work / "reports" / PROFILE / "models")
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=work, env=_ENV, check=True)
    return work


_ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def _dvc(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=work, env=_ENV, capture_output=True, text=True)


def test_a_cpu_chapter_parameter_reruns_that_chapter_alone_and_the_profiles_cannot_be_mixed(tmp_path):
    """What `dvc exp run reports/cpu/dvc.yaml -S <a chapter 3 parameter>` would run, without running it
    (`dvc repro --dry`); and the root pipeline switched to profile cpu is refused, not run against the
    quick study's lock file."""
    work = _scratch_repository(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    lambdas = params["profiles"][PROFILE]["robustness"]["lambdas"]
    from sdnet.pipeline import set_params

    set_params(work, [f"profiles.{PROFILE}.robustness.lambdas={lambdas[:-1]}"])
    dry = _dvc(work, "repro", "--dry", f"reports/{PROFILE}/dvc.yaml")
    assert dry.returncode == 0, dry.stderr
    ran = [line.split("'")[1].split(":")[-1] for line in dry.stdout.splitlines() if line.startswith("Running stage")]
    # `--dry` cannot know which outputs the rerun changes: it lists the stage whose parameter changed,
    # and the stages downstream only if their own deps changed (none here), besides the stages
    # RESULTS.md declares stale (their rerun is pending whatever the parameter)
    block = stale.read_notice((ROOT / "reports" / PROFILE / "RESULTS.md").read_text(), PROFILE)
    declared = set(stale.declared_stages(block)) if block else set()
    assert [s for s in ran if s not in declared] == ["sweep_noise"], ran
    set_params(work, ["profile=cpu"])
    mixed = _dvc(work, "repro", "--dry")
    assert mixed.returncode != 0 and "overlap" in (mixed.stderr + mixed.stdout).lower()


def test_a_notice_names_its_stages_and_strips_cleanly():
    text = "# Title\n\nBody.\n"
    block = stale.notice("cpu", {"train@sdnet18": ["sdnet/csc.py"], "summarize": ["sdnet/csc.py"]}, "abc1234")
    marked = stale.with_notice(text, "cpu", block, after_title=True)
    assert marked.startswith("# Title\n\n" + block) and "abc1234" in block
    assert stale.declared_stages(stale.read_notice(marked, "cpu")) == ["train@sdnet18", "summarize"]
    assert stale.strip_notice(marked, "cpu") == text  # exactly what the notice was added to
    assert stale.with_notice(marked, "cpu", "", after_title=True) == text
    top = stale.with_notice(text, "cpu", block, after_title=False)
    assert top.startswith(block) and stale.strip_notice(top, "cpu") == text
    assert stale.notice("cpu", {}, "abc1234") == ""


def test_readmes_summary_notice_is_one_line_that_counts_the_stages_and_links_the_full_notice():
    stages = {f"train@run{i}": ["sdnet/csc.py"] for i in range(22)}
    summary = stale.summary_notice("cpu", stages, "abc1234")
    start, body, end = summary.splitlines()
    assert (start, end) == ("<!-- stale-results:cpu -->", "<!-- /stale-results:cpu -->")
    assert "22 of their stages" in body and "`abc1234`" in body and "(reports/cpu/RESULTS.md)" in body
    assert "train@run0" not in body and "sdnet/csc.py" not in body  # the lists are RESULTS.md's
    marked = stale.with_notice("# Title\n\nBody.\n", "cpu", summary, after_title=True)
    assert stale.read_notice(marked, "cpu") == summary and stale.strip_notice(marked, "cpu") == "# Title\n\nBody.\n"
    assert stale.summary_notice("cpu", {}, "abc1234") == ""


def test_the_readme_summary_is_the_committed_verdicts():
    from sdnet import readme

    text = (ROOT / "README.md").read_text()
    assert readme.read_block(text, PROFILE) == readme.does_it_hold(ROOT, PROFILE), (
        f"README's 'Does it hold?' table is not made from reports/{PROFILE}/tables: run `python -m sdnet.readme {PROFILE} --write`"
    )


def test_the_regime_table_is_the_committed_verdicts():
    from sdnet import marked, regime

    text, table_md = (ROOT / "README.md").read_text(), regime.table(ROOT)
    assert marked.read(text, regime.BLOCK, "regimes") == regime.block(table_md), (
        "README's 'Does it depend on the regime?' table is not made from the committed studies: run `python -m sdnet.regime --write`")
    assert (ROOT / regime.TABLE).read_text() == regime.results_md(table_md), f"{regime.TABLE} is stale: run `python -m sdnet.regime --write`"
