"""Every Python snippet of the README and of the pages in docs/ runs as printed: a user pastes
them, so they are code.

Each runs in a fresh interpreter, as a user's would: an import that only works after another
module happened to import something first (the lazy ``sdnet.models``) fails here as it would there.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


SNIPPETS = [(page.relative_to(ROOT).as_posix(), i, source) for page in PAGES for i, source in enumerate(python_blocks(page))]


def test_the_readme_has_python_snippets():
    assert python_blocks(README), "no ```python block found in README.md"


@pytest.mark.parametrize("page,index,source", SNIPPETS, ids=[f"{page}:{i}" for page, i, _ in SNIPPETS])
def test_snippet_runs(page, index, source, tmp_path):
    run = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"snippet {index} of {page} failed:\n{source}\n{run.stderr[-3000:]}"


def shell_block(page: Path, heading: str) -> str:
    """The first ```bash block of the section ``heading`` (a ``## `` heading) of ``page``."""
    section = page.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)[0]


def plain_path() -> str:
    """A PATH as a new shell has it: without this project's (or any) virtual environment."""
    return ":".join(p for p in __import__("os").environ["PATH"].split(":") if ".venv" not in p and "/envs/" not in p)


@pytest.mark.e2e
def test_the_documented_commands_that_change_parameters_run_as_pasted(tmp_path):
    """docs/pipeline.md's "Changing parameters and comparing runs" block, pasted into a new bash whose PATH
    has no virtual environment, in a fresh clone of the committed repository (its quick study and
    networks): it succeeds, and each `dvc exp run` runs only the stages downstream of its change."""
    import os

    root = ROOT
    venv = root / ".venv"
    if not (root / ".git").exists() or not venv.is_dir():
        pytest.skip("needs a git checkout with its .venv (make setup)")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    (clone / ".venv").symlink_to(venv)
    # OMP_NUM_THREADS passes through: `make e2e` runs two tests at a time, one torch thread each
    env = {"PATH": plain_path(), "HOME": os.environ.get("HOME", str(tmp_path)), "DVC_NO_ANALYTICS": "1",
           **{k: os.environ[k] for k in ("OMP_NUM_THREADS",) if k in os.environ},
           "GIT_AUTHOR_NAME": "reader", "GIT_AUTHOR_EMAIL": "reader@example.org", "GIT_COMMITTER_NAME": "reader", "GIT_COMMITTER_EMAIL": "reader@example.org"}
    block = shell_block(ROOT / "docs" / "pipeline.md", "Changing parameters and comparing runs")
    run = subprocess.run(["bash", "--noprofile", "--norc", "-e", "-c", block], cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = re.findall(r"Running stage '([^']+)'", run.stdout)
    # chapter 3 and RESULTS.md; then chapter 1, and RESULTS.md only if chapter 1's tables changed
    assert ran[:4] == ["sweep_noise", "tabulate_noise", "summarize", "explain_layer"] and ran[4:] in ([], ["summarize"]), ran
    assert "max_steps" in run.stdout  # dvc params diff / exp show name the changed parameter


@pytest.mark.e2e
def test_a_stage_run_outside_the_environment_says_to_activate_it(tmp_path):
    """`dvc repro` started without activating the environment runs the stages with a Python that
    lacks the project's packages: the first stage stops at once and says what to do."""
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists()), None)
    if python is None:
        pytest.skip("no system Python")
    bare = subprocess.run([python, "-c", "import importlib.util as u; print(all(u.find_spec(m) for m in ('torch', 'pandas')))"],
                          capture_output=True, text=True)
    if bare.stdout.strip() != "False":
        pytest.skip("the system Python has the project's packages")
    run = subprocess.run([python, "-m", "sdnet.stages.train", "resnet18"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "Activate it first (`source .venv/bin/activate`" in run.stderr and "Traceback" not in run.stderr
