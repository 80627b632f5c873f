"""Every Python snippet of the README runs as printed: a user pastes them, so they are code.

Each runs in a fresh interpreter, as a user's would: an import that only works after another
module happened to import something first (the lazy ``sdnet.models``) fails here as it would there.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_python_snippets():
    assert SNIPPETS, "no ```python block found in README.md"


@pytest.mark.parametrize("source", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs(source, tmp_path):
    run = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"README snippet failed:\n{source}\n{run.stderr[-3000:]}"
