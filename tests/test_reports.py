"""The committed results of the `cpu` profile are what the committed code and parameters produce,
or say in their first lines which stages older code made (sdnet.stale).

`reports/cpu/dvc.lock` is the lock file DVC wrote when it ran the study (docs/cpu-study.md, "How it was run"): the
hashes of every stage's code, parameters and outputs. In a copy of the repository with that lock
file in place, DVC must find the chapters' outputs (notebooks, tables, figures, metrics and
RESULTS.md under reports/cpu/) to be the ones it recorded. Their code must be today's, unless
RESULTS.md opens with the notice that `python -m sdnet.stale cpu --write` makes, naming exactly the
stages whose code or parameters changed since, and README.md with its one-line summary. (The scratch copy leaves out
the trained networks under reports/cpu/models/: the stages that read them are checked through
their outputs.)
A change to a module the study runs fails this test until the study is rerun or the change declared.
"""

from pathlib import Path

import pytest

from sdnet import stale

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "cpu"
CHAPTERS = ["explain_layer", "tabulate_accuracy", "tabulate_noise", "tabulate_attacks", "summarize"]

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not stale.lock_path(ROOT, PROFILE).is_file(), reason="no committed cpu results")]


def test_the_committed_cpu_results_are_those_of_the_committed_code_or_declared_stale():
    results = (ROOT / "reports" / PROFILE / "RESULTS.md").read_text()
    block = stale.read_notice(results, PROFILE)
    status = stale.dvc_status(ROOT, PROFILE, results_md=stale.strip_notice(results, PROFILE))
    # The outputs, notice aside, are those the run recorded: nothing was edited by hand.
    edited = {s: e for s, e in status.items() if s in CHAPTERS and any(isinstance(x, dict) and "changed outs" in x for x in e)}
    assert not edited, f"reports/{PROFILE} outputs differ from what its dvc.lock recorded: {edited}"
    changed = stale.stale_stages(status)
    if block is None:
        assert not changed, (
            f"reports/{PROFILE} was made by other code than today's (stages {sorted(changed)}): rerun the study "
            f"(docs/cpu-study.md, 'How it was run') or declare it with `python -m sdnet.stale {PROFILE} --write`"
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
