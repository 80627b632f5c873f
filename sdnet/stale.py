"""Committed results made by older code: found, and declared where a reader looks first.

    python -m sdnet.stale cpu            # which stages of reports/cpu today's code would change
    python -m sdnet.stale cpu --write    # declare it at the top of reports/cpu/RESULTS.md and README.md

A committed study (``reports/<profile>/`` with its own pipeline file and the ``dvc.lock`` of its
run beside it, :func:`sdnet.pipeline.own_pipeline`) takes hours to rerun,
and a change to the code it ran (a faster CSC layer, say) makes its numbers those of older code.
Such a change may land before the rerun, but not silently: the first lines of the study's
RESULTS.md then say which stages would change and through which files, which commit made them,
and that a rerun is pending; README.md, a landing page, says the same in one line that links
there. ``tests/test_reports.py`` accepts exactly that declared state: the notice must name exactly
the stages whose code or parameters changed, and the outputs, notice aside, must be those the
lock file recorded. The rerun removes both notices (``--write`` with nothing stale).

Which stages are stale is what ``dvc status`` says of the study's pipeline file: a stage whose
``deps`` (the sdnet modules it imports, its notebook, its parameters) changed since the run. The
same status names outputs that differ from what the lock file recorded (:func:`edited_outputs`):
results edited by hand, or committed beside another run's lock file. The command reports them
and fails, for every committed profile (the active one's lock file is the root dvc.lock).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from sdnet import marked
from sdnet.config import command_line
from sdnet.params import repo_root

NOTICE = "stale-results"  # the kind of its blocks in RESULTS.md and README.md (sdnet.marked)

# Copied neither into the scratch repository nor compared: local state and data, not results.
_LOCAL = {".venv", ".git", ".dvc", "__pycache__", ".pytest_cache", "logs", "models", "gpu-results"}


def pipeline_path(root: Path, profile: str) -> Path:
    """The pipeline file of a committed study: its own ``reports/<profile>/dvc.yaml``
    (:func:`sdnet.pipeline.own_pipeline`), or dvc.yaml for the active profile of params.yaml."""
    from sdnet.pipeline import own_pipeline_path

    own = own_pipeline_path(root, profile)
    if own.is_file():
        return own
    if yaml.safe_load((root / "params.yaml").read_text()).get("profile") == profile:
        return root / "dvc.yaml"
    raise SystemExit(f"profile {profile!r} has no pipeline of its own (reports/{profile}/dvc.yaml) and is not the active one")


def lock_path(root: Path, profile: str) -> Path:
    """The lock file of a committed study's run: beside its pipeline file."""
    return pipeline_path(root, profile).with_name("dvc.lock")


def committed_profiles(root: Path) -> list[str]:
    """The profiles whose results the repository holds with the lock file of their run: each own
    pipeline that has a lock file, and the active profile (dvc.yaml and dvc.lock)."""
    from sdnet.pipeline import own_pipelines

    profiles = [p for p in own_pipelines(root) if (root / "reports" / p / "dvc.lock").is_file()]
    active = yaml.safe_load((root / "params.yaml").read_text()).get("profile")
    if (root / "dvc.lock").is_file() and active not in profiles:
        profiles.insert(0, active)
    return profiles


def made_by(root: Path, profile: str) -> str | None:
    """The commit that last changed the study's lock file (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(lock_path(root, profile).relative_to(root))],
                             cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out or None


def dvc_status(root: Path, profile: str, results_md: str | None = None) -> dict[str, list]:
    """``dvc status --json`` of the study's pipeline file (:func:`pipeline_path`) against the lock
    file of its run, in a scratch copy of ``root`` (DVC writes its state there, not here).
    ``results_md``, if given, replaces the study's RESULTS.md in the copy (the test strips the
    notice with it)."""
    pipeline = pipeline_path(root, profile).relative_to(root)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(root, work, ignore=lambda folder, names: {n for n in names if n in _LOCAL or (Path(folder) == root and n == "data")})
        if results_md is not None:
            (work / "reports" / profile / "RESULTS.md").write_text(results_md)
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=work, env=env, check=True)
        run = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", str(pipeline)], cwd=work, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"dvc status failed: {run.stderr}")
    return {_stage_name(name): entries for name, entries in json.loads(run.stdout or "{}").items()}


def _stage_name(name: str) -> str:
    """A stage's name without the pipeline file DVC prefixes it with (``reports/cpu/dvc.yaml:attack``)."""
    return name.split(":", 1)[1] if ".yaml:" in name else name


def recorded_outputs(root: Path, profile: str) -> dict[str, set[str]]:
    """``{stage: {outputs}}`` the study's lock file recorded (its stages as :func:`_stage_name` gives them)."""
    path = lock_path(root, profile)
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.is_file() else {}
    return {_stage_name(name): {out["path"] for out in stage.get("outs", [])} for name, stage in stages.items()}


def edited_outputs(status: dict[str, list], profile: str, root: Path | None = None) -> dict[str, list[str]]:
    """From :func:`dvc_status`: ``{stage: [outputs]}`` for every output that differs from what the
    lock file recorded (changed or missing): results edited, or committed with another lock file.
    The trained networks (``reports/<profile>/models/``) are left out: the scratch copy lacks them.
    With ``root``, so is an output the lock file never recorded (one that today's pipeline adds to
    a stage: its rerun, pending and declared stale, makes it)."""
    recorded = recorded_outputs(root, profile) if root is not None else None
    edited = {}
    for stage, entries in sorted(status.items()):
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            paths = [path for path in entry.get("changed outs", {}) if not path.startswith(f"reports/{profile}/models/")
                     and (recorded is None or stage not in recorded or path in recorded[stage])]
            if paths:
                edited.setdefault(stage, []).extend(sorted(paths))
    return edited


def _code_changes(entries: list) -> list[str]:
    """The changed code and parameters among a stage's status entries (a dataset the scratch copy
    lacks, or outputs, are not the code)."""
    changed = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        for path, what in entry.get("changed deps", {}).items():
            if path.startswith(("sdnet/", "notebooks/")) and what == "modified":
                changed.append(path)
            elif path == "params.yaml" or path.endswith(":params.yaml") or isinstance(what, dict):
                changed.append("params.yaml")
    return sorted(set(changed))


def stale_stages(status: dict[str, list]) -> dict[str, list[str]]:
    """From :func:`dvc_status`: ``{stage: [changed code and parameter files]}`` for every stage
    whose code or parameters changed since the study ran."""
    return {stage: files for stage, entries in sorted(status.items()) if (files := _code_changes(entries))}


def notice(profile: str, stages: dict[str, list[str]], commit: str | None) -> str:
    """The notice block for ``stages`` (empty when nothing is stale)."""
    if not stages:
        return ""
    start, end = marked.markers(NOTICE, profile)
    files = sorted({f for fs in stages.values() for f in fs})
    by = f"commit `{commit}`" if commit else "an earlier commit"
    return (
        f"{start}\n"
        f"> **These `{profile}` results were made by older code** ({by}). The code or parameters of "
        f"{len(stages)} of their stages changed since ({', '.join(f'`{f}`' for f in files)}), so a rerun may change "
        f"their numbers: {', '.join(f'`{s}`' for s in stages)}. The rerun is pending; until then read them as results of "
        f"{by}.\n"
        f"{end}\n"
    )


def summary_notice(profile: str, stages: dict[str, list[str]], commit: str | None) -> str:
    """README's one-line form of :func:`notice`: how many stages, and where the full notice is."""
    if not stages:
        return ""
    start, end = marked.markers(NOTICE, profile)
    by = f"commit `{commit}`" if commit else "an earlier commit"
    return (
        f"{start}\n"
        f"> **The `{profile}` results below were made by older code** ({by}): {len(stages)} of their stages would change "
        f"under today's code or parameters (which, and why: [reports/{profile}/RESULTS.md](reports/{profile}/RESULTS.md)); "
        f"their rerun is pending.\n"
        f"{end}\n"
    )


def read_notice(text: str, profile: str) -> str | None:
    """The notice block for ``profile`` in ``text``, or None."""
    return marked.read(text, NOTICE, profile)


def declared_stages(block: str) -> list[str]:
    """The stage names a notice block lists (after 'change their numbers:')."""
    listed = block.split("their numbers:", 1)[1].split(". The rerun", 1)[0]
    return re.findall(r"`([^`]+)`", listed)


def strip_notice(text: str, profile: str) -> str:
    """``text`` without the notice for ``profile`` and the blank line after it: exactly the text
    :func:`with_notice` added it to."""
    found = marked.find(text, NOTICE, profile)
    if not found:
        return text
    tail = text[found.end():]
    return text[: found.start()] + (tail[1:] if tail.startswith("\n") else tail)


def with_notice(text: str, profile: str, block: str, *, after_title: bool) -> str:
    """``text`` with its notice for ``profile`` replaced by ``block`` (at the top, or after the
    first line and its blank line when ``after_title``: README's title)."""
    text = strip_notice(text, profile)
    if not block:
        return text
    if after_title:
        title, _, rest = text.partition("\n\n")
        return f"{title}\n\n{block}\n{rest}"
    return f"{block}\n{text}"


def write(root: Path, profile: str, status: dict[str, list] | None = None) -> dict[str, list[str]]:
    """Find the stale stages of ``reports/<profile>`` (from ``status``, :func:`dvc_status`, if
    given) and (re)write the notice in its RESULTS.md and in README.md (or remove it when nothing
    is stale)."""
    results = root / "reports" / profile / "RESULTS.md"
    clean = strip_notice(results.read_text(), profile)
    stages = stale_stages(status if status is not None else dvc_status(root, profile, results_md=clean))
    commit = made_by(root, profile)
    results.write_text(with_notice(clean, profile, notice(profile, stages, commit), after_title=False))
    readme = root / "README.md"
    readme.write_text(with_notice(readme.read_text(), profile, summary_notice(profile, stages, commit), after_title=True))
    return stages


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Which stages of a committed study today's code would change; --write declares it.")
    p.add_argument("profile", help="the study: reports/<profile>/ with its dvc.lock")
    p.add_argument("--write", action="store_true", help="write (or remove) the notice in its RESULTS.md and README.md")
    args = p.parse_args(argv)
    root = repo_root()
    if not lock_path(root, args.profile).is_file():
        raise SystemExit(f"no {lock_path(root, args.profile)}: reports/{args.profile} has no committed run")
    clean = strip_notice((root / "reports" / args.profile / "RESULTS.md").read_text(), args.profile)
    status = dvc_status(root, args.profile, results_md=clean)
    stages = write(root, args.profile, status) if args.write else stale_stages(status)
    for stage, files in stages.items():
        print(f"{stage}: {', '.join(files)}")
    print(f"{len(stages)} stale stage(s) in reports/{args.profile}" + (" (declared in RESULTS.md and README.md)" if args.write and stages else ""))
    edited = edited_outputs(status, args.profile, root)
    for stage, paths in edited.items():
        print(f"{stage}: outputs differ from {lock_path(root, args.profile).relative_to(root)}: {', '.join(paths)}")
    if edited:
        raise SystemExit(f"{len(edited)} stage(s) of reports/{args.profile} have outputs their lock file did not record: "
                         f"edited by hand, or committed with another run's lock file; rerun them (`dvc repro {pipeline_path(root, args.profile).relative_to(root)}`)")


if __name__ == "__main__":
    main()
