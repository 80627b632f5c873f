"""The pipeline (dvc.yaml) seen from Python: its stages, their code dependencies, and a runner.

    python -m sdnet.pipeline deps [--write]            # the sdnet files each stage really imports
    python -m sdnet.pipeline run --profile fast        # the computing stages, without DVC or Jupyter
    python -m sdnet.pipeline repro                     # dvc repro, one line per stage, the rest in logs/
    python -m sdnet.pipeline outs train@sdnet18        # the paths a stage writes (one a line)
    python -m sdnet.pipeline own cpu [--write]         # reports/cpu/dvc.yaml: profile cpu's own pipeline

dvc.yaml is the single description of the study; this module reads it (expanding ``${...}``
variables from params.yaml and ``foreach`` loops, as DVC does) rather than restating it.

*Dependencies.* A stage must rerun when any code it executes changes, so its ``deps`` must list
every ``sdnet`` module its command or notebook imports, directly or through other modules (also
imports inside functions: they run when the function does). :func:`stage_code` computes that set
from the source (:func:`sdnet.provenance.code_dependencies`); the test suite checks it against
dvc.yaml, and ``deps`` prints it (``--write`` puts it into dvc.yaml).

*A committed study's own pipeline.* dvc.yaml runs the active profile (params.yaml ``profile``)
and its lock file is the root dvc.lock. A study committed with its results (``reports/cpu/``)
has its own pipeline file, ``reports/<profile>/dvc.yaml``: the same stages at that profile, run
from the repository root, with its own lock file beside it (:func:`own_pipeline`). So
``dvc repro reports/cpu/dvc.yaml`` compares the cpu study with the lock of its run, and a change
to one chapter reruns that chapter alone, whatever the active profile; no lock file is ever
swapped, and the two can never be mixed: with ``profile: cpu`` the root pipeline would write the
same outputs as reports/cpu/dvc.yaml, and DVC refuses to run either (overlapping outputs). The
file is generated from dvc.yaml (``deps --write`` regenerates it; the tests check it matches).

*Runner.* On a bare GPU box (no DVC, no Jupyter) :func:`run` executes the stages whose command is
a ``python -m sdnet...`` command, in dvc.yaml's order, with exactly the commands and outputs of
``dvc repro``. Back on a machine with DVC, ``dvc commit`` records those outputs and ``dvc repro``
runs what is left: the chapters' notebooks (docs/gpu.md, "On a machine lent for minutes, without DVC").
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sdnet.config import command_line
from sdnet.provenance import code_dependencies
from sdnet.params import repo_root

_VARIABLE = re.compile(r"\$\{\s*([\w.\-]+)\s*\}")


@dataclass(frozen=True)
class Stage:
    """One expanded stage of dvc.yaml: its name (``train@sdnet18`` for a foreach item), command,
    dependencies and outputs (paths relative to the repository)."""

    name: str
    cmd: str
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)

    @property
    def notebook(self) -> str | None:
        """The notebook a papermill stage executes, or None."""
        words = shlex.split(self.cmd.replace("&&", " && "))
        if "papermill" in words:
            return words[words.index("papermill") + 1]
        return None

    @property
    def module(self) -> str | None:
        """The module a ``python -m sdnet...`` stage runs, or None."""
        words = shlex.split(self.cmd)
        if len(words) >= 3 and words[0] in ("python", "python3") and words[1] == "-m" and words[2].startswith("sdnet"):
            return words[2]
        return None


def _lookup(variables: dict[str, Any], name: str) -> Any:
    value: Any = variables
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"dvc.yaml uses ${{{name}}}, which params.yaml does not define")
        value = value[part]
    return value


def _substitute(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _VARIABLE.fullmatch(value.strip())
        if whole:  # a lone ${x} keeps its type (a foreach over a mapping)
            return _lookup(variables, whole.group(1))
        return _VARIABLE.sub(lambda m: str(_lookup(variables, m.group(1))), value)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, variables): _substitute(v, variables) for k, v in value.items()}
    return value


def _paths(entries: list[Any]) -> list[str]:
    """Paths of a deps/outs list whose entries are strings or ``{path: options}`` mappings."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


def load_stages(root: str | Path | None = None, profile: str | None = None) -> list[Stage]:
    """The stages of ``dvc.yaml`` in file order, expanded with params.yaml's values (``profile``
    overrides its ``profile``), as ``dvc repro`` would see them."""
    root = repo_root(root)
    variables = yaml.safe_load((root / "params.yaml").read_text())
    if profile is not None:
        variables["profile"] = profile
    stages = []
    for name, spec in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].items():
        if "foreach" in spec:
            items = _substitute(spec["foreach"], variables)
            pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
            expanded = [(f"{name}@{key}", _substitute(spec["do"], {**variables, "key": key, "item": item})) for key, item in pairs]
        else:
            expanded = [(name, _substitute(spec, variables))]
        for stage_name, body in expanded:
            outs = _paths(body.get("outs")) + _paths(body.get("metrics")) + _paths(body.get("plots"))
            stages.append(Stage(stage_name, " ".join(body["cmd"].split()), _paths(body.get("deps")), outs))
    return stages


# ---------------------------------------------------------------------------------------------
# Code dependencies
# ---------------------------------------------------------------------------------------------


def stage_code(root: str | Path, stage: Stage) -> set[str]:
    """:func:`code_dependencies` of a stage's command or notebook (empty for other commands)."""
    if stage.module:
        return code_dependencies(root, modules=[stage.module])
    if stage.notebook:
        return code_dependencies(root, notebooks=[stage.notebook])
    return set()


def declared_code(root: str | Path, stage: Stage) -> set[str]:
    """The sdnet source files a stage's ``deps`` cover (a folder covers every .py file in it)."""
    root = Path(root)
    files = set()
    for dep in stage.deps:
        path = root / dep
        if dep.split("/")[0] != "sdnet":
            continue
        if path.is_dir():
            files.update(p.relative_to(root).as_posix() for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            files.add(dep)
    return files


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


def set_params(root: str | Path, assignments: list[str], validate: bool = True) -> None:
    """Apply ``key.path=value`` assignments to params.yaml (values read as YAML), as
    ``dvc exp run -S`` does, after checking that the result is valid (``validate``: false for
    values an older study recorded, which today's schema may no longer take). Comments are not kept."""
    from sdnet.params import parse_params
    from sdnet.config import ConfigError

    path = Path(root) / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise ConfigError(f"--set takes key.path=value, got {assignment!r}")
        node, *parents = params, *key.split(".")[:-1]
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {assignment}: params.yaml has no section {part!r} on the way to {key!r}")
            node = node[part]
        node[key.split(".")[-1]] = yaml.safe_load(value)
    if validate:
        parse_params(params, source=f"{path} with {' '.join(assignments)}")
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def select(stages: list[Stage], names: list[str]) -> list[Stage]:
    """The stages called ``names`` (a name without ``@item`` stands for all its items), in
    dvc.yaml's order; an unknown name is an error that lists the stages there are."""
    chosen = [s for s in stages if s.name in names or s.name.split("@")[0] in names]
    unknown = set(names) - {s.name for s in chosen} - {s.name.split("@")[0] for s in chosen}
    if unknown:
        raise SystemExit(f"no stage {sorted(unknown)} in dvc.yaml; its stages: {', '.join(s.name for s in stages)}")
    return chosen


def run(root: str | Path | None = None, profile: str | None = None, only: list[str] | None = None, dry_run: bool = False) -> list[Stage]:
    """Run the computing stages (``python -m sdnet...``) of dvc.yaml in order, or those of
    ``only`` (names, or a name without ``@item`` for all its items); returns the stages run.

    Notebook stages, and stages that read what a notebook writes (``summarize``), are not run
    here: ``dvc repro`` runs them afterwards, on the outputs written here (after ``dvc commit``
    has recorded them). ``dry_run`` only prints the plan.
    """
    root = repo_root(root)
    stages = load_stages(root, profile)
    chosen = stages if only is None else select(stages, only)
    # A stage is left for `dvc repro` if it runs a notebook or reads what such a stage writes.
    left_outs: list[str] = []
    computing, left = [], []
    for stage in stages:
        reads_left = any(dep == out or dep.startswith(out + "/") or out.startswith(dep + "/") for dep in stage.deps for out in left_outs)
        if stage.notebook or reads_left:
            left_outs += stage.outs
            if stage in chosen:
                left.append(stage.name)
        elif stage in chosen:
            computing.append(stage)
    for stage in computing:
        words = shlex.split(stage.cmd)
        command = [sys.executable, *words[1:]]  # the `python` of dvc.yaml is this interpreter
        print(f"[{stage.name}] {' '.join(words)}", flush=True)
        if dry_run:
            continue
        tic = time.perf_counter()
        subprocess.run(command, cwd=root, check=True)
        print(f"[{stage.name}] done in {time.perf_counter() - tic:.0f} s", flush=True)
    if left:
        print(f"left for `dvc repro` (notebooks need Jupyter): {', '.join(left)}", flush=True)
    return computing


def repro(args: list[str], log: str | Path | None = None, root: str | Path | None = None) -> int:
    """``dvc repro ARGS`` with a readable console: one line per stage (its number, name and time),
    the whole output kept in ``log`` (default ``logs/repro-<date>.log``), and on failure the end
    of the output and where the rest is. Returns DVC's exit status."""
    import datetime
    import os

    root = repo_root(root)
    log = Path(log) if log else root / "logs" / f"repro-{datetime.datetime.now():%Y%m%d-%H%M%S}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    total = len(load_stages(root))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}
    started, current, count, tail = time.perf_counter(), None, 0, []
    with log.open("w") as out:
        process = subprocess.Popen(["dvc", "repro", *args], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            out.write(line)
            tail = (tail + [line])[-40:]
            running = re.match(r"Running stage '(.+)'", line)
            skipped = re.match(r"Stage '(.+)' didn't change, skipping", line)
            if running or skipped:
                if current:
                    print(f"done in {time.perf_counter() - current:.0f} s", flush=True)
                count += 1
                name = (running or skipped).group(1)
                if skipped:
                    print(f"[{count}/{total}] {name}: up to date", flush=True)
                    current = None
                else:
                    print(f"[{count}/{total}] {name} ... ", end="", flush=True)
                    current = time.perf_counter()
        status = process.wait()
    if current:
        print(f"{'done' if status == 0 else 'FAILED'} in {time.perf_counter() - current:.0f} s", flush=True)
    if status:
        print("".join(tail), end="")
    print(f"{'dvc repro finished' if status == 0 else 'dvc repro FAILED'} in {time.perf_counter() - started:.0f} s; full log: {log}", flush=True)
    return status


def write_code_deps(root: str | Path | None = None) -> bool:
    """Rewrite the ``sdnet/...`` lines of every stage's ``deps`` in dvc.yaml to
    :func:`stage_code` (the rest of the file is left as it is); returns whether anything changed.

    Each stage lists its sdnet files as one run of ``- sdnet/...`` lines (a foreach stage once,
    for all its items: every item runs the same command)."""
    root = repo_root(root)
    path = root / "dvc.yaml"
    code: dict[str, list[str]] = {}
    for stage in load_stages(root):
        code.setdefault(stage.name.split("@")[0], sorted(stage_code(root, stage)))
    lines, stage, out = path.read_text().splitlines(), None, []
    for line in lines:
        header = re.match(r"^  (\w+):\s*$", line)
        if header:
            stage = header.group(1)
        entry = re.match(r"^(\s*)- sdnet/", line)
        if entry and stage in code:
            if code[stage] is not None:  # the first line of the run: write the whole list
                out += [f"{entry.group(1)}- {name}" for name in code[stage]]
                code[stage] = None
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    changed = text != path.read_text()
    path.write_text(text)
    return changed


def own_pipeline_path(root: str | Path, profile: str) -> Path:
    """Where a committed study's own pipeline file lives: ``reports/<profile>/dvc.yaml``."""
    return Path(root) / "reports" / profile / "dvc.yaml"


def own_pipelines(root: str | Path) -> list[str]:
    """The profiles that have their own pipeline file, sorted."""
    return sorted(p.parent.name for p in (Path(root) / "reports").glob("*/dvc.yaml"))


def own_pipeline(root: str | Path, profile: str) -> str:
    """The text of ``reports/<profile>/dvc.yaml``: dvc.yaml's stages with ``profile`` fixed to
    ``profile`` (a variable of the file, no longer a parameter the stages read: the root's
    ``profile`` can change without touching this study) and run from the repository root
    (``wdir: ../..``, so that every path, params.yaml included, means what it means in dvc.yaml)."""
    root = repo_root(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    if profile not in params.get("profiles", {}):
        raise SystemExit(f"params.yaml has no profile {profile!r}; its profiles: {', '.join(params.get('profiles', {}))}")
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    if pipeline.get("vars") != ["params.yaml"]:
        raise SystemExit("dvc.yaml must take its variables from params.yaml alone (`vars: [params.yaml]`)")
    stages = {}
    for name, spec in pipeline["stages"].items():
        body = dict(spec["do"] if "foreach" in spec else spec)
        body = {"wdir": "../..", **body, "params": [p for p in body.get("params", []) if p != "profile"]}
        stages[name] = {"foreach": spec["foreach"], "do": body} if "foreach" in spec else body
    header = (
        f"# The `{profile}` study's own pipeline: the stages of dvc.yaml at profile `{profile}`, run from the\n"
        f"# repository root, with the lock file of its run beside this file (reports/{profile}/dvc.lock).\n"
        f"#   dvc repro reports/{profile}/dvc.yaml                       run what is out of date\n"
        f"#   dvc exp run reports/{profile}/dvc.yaml -S profiles.{profile}.<section>.<key>=<value>\n"
        f"# Generated from dvc.yaml by `python -m sdnet.pipeline own {profile} --write` (and by `deps --write`):\n"
        f"# edit dvc.yaml, not this file.\n"
    )
    body = yaml.safe_dump({"vars": ["../../params.yaml:runs,profiles", {"profile": profile}], "stages": stages},
                          sort_keys=False, width=120)
    return header + body


def write_own_pipelines(root: str | Path | None = None, profiles: list[str] | None = None) -> list[str]:
    """(Re)write the own pipeline file of ``profiles`` (default: those that have one); returns the
    profiles whose file changed."""
    root = repo_root(root)
    changed = []
    for profile in own_pipelines(root) if profiles is None else profiles:
        path, text = own_pipeline_path(root, profile), own_pipeline(root, profile)
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(profile)
    return changed


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sdnet.pipeline", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the computing stages of dvc.yaml without DVC (e.g. on a remote GPU)")
    r.add_argument("stages", nargs="*", help="stage names (default: every computing stage), e.g. train@sdnet18 or train")
    r.add_argument("--profile", default=None, help="default: params.yaml's `profile`")
    r.add_argument("--dry-run", action="store_true", help="print the commands only")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change params.yaml first, as `dvc exp run -S` does (e.g. profiles.fast.data.datasets=[cifar10-jpeg])")
    rp = sub.add_parser("repro", help="dvc repro with one line per stage and the full output in a log file")
    rp.add_argument("dvc_args", nargs=argparse.REMAINDER, help="passed to dvc repro")
    rp.add_argument("--log", default=None, help="default: logs/repro-<date>.log")
    o = sub.add_parser("outs", help="print the outputs of stages (outs, metrics, plots), one path a line (e.g. to pack results)")
    o.add_argument("stages", nargs="+", help="stage names, e.g. train@sdnet18 or train")
    o.add_argument("--profile", default=None, help="default: params.yaml's `profile`")
    d = sub.add_parser("deps", help="print the sdnet files each stage imports, and where dvc.yaml differs")
    d.add_argument("--write", action="store_true", help="rewrite the sdnet lines of dvc.yaml's deps to match (and the own pipelines)")
    w = sub.add_parser("own", help="a committed study's own pipeline file, reports/<profile>/dvc.yaml, generated from dvc.yaml")
    w.add_argument("profile")
    w.add_argument("--write", action="store_true", help="write it (default: print it)")
    args = p.parse_args(argv)
    if args.command == "own":
        if args.write:
            write_own_pipelines(profiles=[args.profile])
            print(f"{own_pipeline_path(repo_root(), args.profile).relative_to(repo_root())} written")
        else:
            print(own_pipeline(repo_root(), args.profile), end="")
        return
    if args.command == "run":
        if args.set:
            set_params(repo_root(), args.set)
        run(profile=args.profile, only=args.stages or None, dry_run=args.dry_run)
        return
    if args.command == "repro":
        raise SystemExit(repro(args.dvc_args, args.log))
    if args.command == "outs":
        print("\n".join(out for stage in select(load_stages(profile=args.profile), args.stages) for out in stage.outs))
        return
    root = repo_root()
    if args.write:
        print("dvc.yaml updated" if write_code_deps(root) else "dvc.yaml was up to date")
        for profile in write_own_pipelines(root):
            print(f"{own_pipeline_path(root, profile).relative_to(root)} regenerated")
    wrong = 0
    for stage in load_stages(root):
        needed, declared = stage_code(root, stage), declared_code(root, stage)
        wrong += needed != declared
        print(f"{stage.name}: {'ok' if needed == declared else 'DIFFERS'} ({len(needed)} sdnet files)")
        for label, files in (("missing from dvc.yaml", needed - declared), ("listed but not imported", declared - needed)):
            if files:
                print(f"  {label}: {', '.join(sorted(files))}")
    if wrong:
        raise SystemExit(f"{wrong} stage(s) differ: run `python -m sdnet.pipeline deps --write`")


if __name__ == "__main__":
    main()
