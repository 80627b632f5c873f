"""README and the pages in docs/ point only at things that exist.

- Every relative link (and image) resolves to a file or folder of the repository, and a link to
  `page.md#anchor` to a heading of that page (GitHub's anchors).
- Every repository path named in inline code (a `code span` whose first component is a top-level
  entry of the repository, e.g. `sdnet/csc.py`, `reports/<profile>/models/`) exists, `<...>`
  standing for any name. A path that only a run or the reader creates is marked as such right
  after it: "`reports/fast/models/` (written by the run)"; the marks are :data:`CREATED`.
- Every section another file cites, in the form `README, "Heading"`, `docs/page.md, "Heading"` or
  `README's "Heading"`, is a heading of that page.

"In the repository" means what git would commit: tracked files and untracked ones it does not
ignore. A git-ignored file that happens to be on this machine (the CIFAR-10 JPEG copy) does not count.
"""

import fnmatch
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What a path that is not in the repository must be followed by: "(written by the run)" ...
CREATED = ("made by", "written by", "created by", "yours", "not in the repository")
# Files whose comments and docstrings cite README's and the pages' sections.
CITING = ["sdnet/**/*.py", "scripts/*", "tests/*.py", "params.yaml", "dvc.yaml", "Makefile", ".gitignore"]


# --- the repository --------------------------------------------------------------------------------


def repository_files(root: Path) -> set[str]:
    """Every file git would commit (tracked, or untracked and not ignored), as posix paths."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return {f for f in out.split("\0") if f and (root / f).exists()}


def folders(files: set[str]) -> set[str]:
    return {str(parent) for f in files for parent in PurePosixPath(f).parents if str(parent) != "."}


def exists(path: str, files: set[str], dirs: set[str]) -> bool:
    """``path`` (``<...>`` and ``*`` standing for any name, a trailing ``/`` for a folder) names a
    file or folder of the repository. A DVC-tracked folder (``data/``, by ``data.dvc``) counts."""
    path = re.sub(r"<[^>]*>", "*", path.split("::")[0]).rstrip("/")
    if f"{path}.dvc" in files:
        return True
    if not any(c in path for c in "*?["):
        return path in files or path in dirs
    return any(fnmatch.fnmatchcase(p, path) for p in files | dirs)


# --- what a page names ---------------------------------------------------------------------------


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (commands, not references)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def relative_links(text: str) -> list[str]:
    """The targets of Markdown links and images that point inside the repository."""
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose(text))
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def named_paths(text: str, top: set[str]) -> list[tuple[str, bool]]:
    """(path, marked as created) for each code span that names a repository path: one word whose
    first component is a top-level entry of the repository."""
    found = []
    for match in re.finditer(r"`([^`\s]+)`(\s*\(([^)]*))?", prose(text)):
        path, after = match.group(1), (match.group(3) or "").lower()
        if "$" in path or PurePosixPath(path.split("::")[0]).parts[0] not in top:
            continue
        if "/" in path or "." in path:
            found.append((path, after.startswith(CREATED)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> list[str]:
    return [h.strip() for h in re.findall(r"^#{1,6} (.+)$", prose(text), flags=re.M)]


def citations(text: str) -> list[tuple[str, str]]:
    """(page, heading) for each `README, "Heading"` / `docs/page.md, "Heading"` / `README's
    "Heading"` in ``text``; comment markers at line breaks are read through, and the authors'
    README ("their README's ...") is not ours."""
    flat = re.sub(r"\n\s*(?:#|//)?\s*", " ", text)
    pattern = r"(?<!their )\b(README(?:\.md)?|docs/[\w-]+\.md)(?:,|'s) [\"']([^\"']+)[\"']"
    return [("README.md" if page.startswith("README") else page, heading) for page, heading in re.findall(pattern, flat)]


# --- the checks on the committed pages -----------------------------------------------------------


@pytest.fixture(scope="module")
def repository():
    files = repository_files(ROOT)
    top = {PurePosixPath(f).parts[0] for f in files} | {"data", "logs"}  # the git-ignored folders pages name
    return files, folders(files), top


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page, repository):
    files, dirs, _ = repository
    for target in relative_links(page.read_text()):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        relative = resolved.relative_to(ROOT).as_posix()
        assert path == "" or exists(relative, files, dirs), f"{page.name}: the link {target} points at nothing in the repository"
        if anchor:
            assert anchor in {slug(h) for h in headings(resolved.read_text())}, f"{page.name}: {target}: no such heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_named_path_exists_or_is_marked_as_made_by_a_run(page, repository):
    files, dirs, top = repository
    named = named_paths(page.read_text(), top)
    assert named, f"{page.name} names no repository path: is the detection broken?"
    missing = [path for path, marked in named if not marked and not exists(path, files, dirs)]
    assert not missing, f"{page.name} names paths the repository does not have (mark those a run makes: {CREATED}): {missing}"


def test_the_sections_other_files_cite_exist():
    cited = {}
    for pattern in CITING:
        for file in ROOT.glob(pattern):
            if file.is_file() and file.name != Path(__file__).name:
                for page, heading in citations(file.read_text(errors="replace")):
                    cited.setdefault((page, heading), []).append(file.relative_to(ROOT).as_posix())
    assert cited, "no citation found: is the detection broken?"
    for (page, heading), where in cited.items():
        assert (ROOT / page).is_file(), f"{where} cite {page}, which does not exist"
        assert heading in headings((ROOT / page).read_text()), f"{where} cite {page}, \"{heading}\": no such heading"


def test_every_page_is_linked_from_the_readme():
    links = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links((ROOT / "README.md").read_text())}
    assert set(PAGES[1:]) <= links, f"pages README does not link: {sorted(p.name for p in set(PAGES[1:]) - links)}"


# --- the detection itself, on made-up text -------------------------------------------------------


def test_links_in_code_blocks_and_to_the_web_are_not_checked():
    text = "[a](docs/x.md#y) ![b](fig.png) [c](https://example.org)\n```bash\n[d](nothere.md)\n```\n"
    assert relative_links(text) == ["docs/x.md#y", "fig.png"]


def test_paths_are_told_from_other_code_and_marks_are_read():
    text = ("`sdnet/csc.py`, `reports/fast/models/` (written by the run), `data/x.tar` (yours: send it), "
            "`python -m sdnet.tools.bench`, `train@sdnet18`, `models/<run>/`, `$OUT/results.tar`, `lam`")
    assert named_paths(text, {"sdnet", "reports", "data"}) == [
        ("sdnet/csc.py", False), ("reports/fast/models/", True), ("data/x.tar", True)]


def test_a_pattern_matches_any_name_and_a_dvc_tracked_folder_counts():
    files = {"reports/cpu/models/a/b/seed0/weights.pt", "data.dvc", "tests/test_x.py"}
    dirs = folders(files)
    assert exists("reports/<profile>/models/<run>/<dataset>/seed<k>/", files, dirs)
    assert exists("tests/test_x.py::test_y", files, dirs) and exists("data/", files, dirs)
    assert not exists("reports/<profile>/figures/", files, dirs) and not exists("data/cifar.tar", files, dirs)


def test_anchors_follow_github():
    assert slug("Does it hold?") == "does-it-hold"
    assert slug("The `cpu` study: recipe") == "the-cpu-study-recipe"
    assert slug("On the official CIFAR-10 files") == "on-the-official-cifar-10-files"


def test_citations_are_found_across_comment_lines_and_the_authors_readme_is_not_ours():
    text = ('# run in parts (docs/cpu-study.md, "How it\n# was run"); see README\'s "Start here";\n'
            "x = 1  # (README, 'Layout')\n"
            "# their README's \"Pre-trained Models\" table; the authors (SDNet, README \"Pre-trained Models\")\n")
    assert citations(text) == [("docs/cpu-study.md", "How it was run"), ("README.md", "Start here"), ("README.md", "Layout")]
