"""README.md's "What it shows" for a committed study: made from its verdict tables, never typed.

    python -m sdnet.readme cpu            # print the block
    python -m sdnet.readme cpu --write    # (re)write it in README.md, between its markers

Each chapter of ``reports/<profile>/`` ends its verdict table (``tables/<chapter>/verdict.csv``,
the same table RESULTS.md opens the chapter with) with one sentence per claim; the block lists
them chapter by chapter, with the line saying which verdicts moved since the profile's earlier
run where there is one. ``tests/test_reports.py`` checks that README carries exactly the block of
the committed tables, so the summary cannot drift from RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from sdnet.config import command_line
from sdnet.stale import find_marked
from sdnet.stages.summarize import SECTIONS
from sdnet.study import repo_root


def _markers(profile: str) -> tuple[str, str]:
    return f"<!-- what-it-shows:{profile} -->", f"<!-- /what-it-shows:{profile} -->"


def _claims(verdict_csv: Path) -> list[str]:
    """'claim -> verdict' per row; a verdict without its own numbers (no colon) gets the measurement."""
    with verdict_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [f"{r['claim']} \u2192 {r['verdict']}" if ":" in r["verdict"] else f"{r['claim']} \u2192 {r['verdict']} ({r['here']})" for r in rows]


def what_it_shows(root: Path, profile: str) -> str:
    """The block for ``reports/<profile>`` (markers included)."""
    tables = root / "reports" / profile / "tables"
    start, end = _markers(profile)
    lines = [start, f"What the `{profile}` study shows, chapter by chapter (each claim, then its verdict; generated from "
             f"`reports/{profile}/tables/*/verdict.csv` by `python -m sdnet.readme {profile} --write`; the numbers, "
             "protocols and tables behind every verdict are in RESULTS.md):", ""]
    for chapter, title, _ in SECTIONS:
        lines.append(f"- **{title}**")
        lines += [f"  - {claim}" for claim in _claims(tables / chapter / "verdict.csv")]
        moved = [line for line in (tables / chapter / "verdict.md").read_text().splitlines() if line.startswith("**Against ")]
        if moved:
            lines.append(f"  - {moved[-1]}")
    lines.append(end)
    return "\n".join(lines) + "\n"


def read_block(text: str, profile: str) -> str | None:
    """The block for ``profile`` in ``text``, or None."""
    found = find_marked(text, *_markers(profile))
    return found.group(0) if found else None


def write(root: Path, profile: str) -> None:
    """Replace README.md's block for ``profile`` by the committed tables' (the markers must be there)."""
    readme = root / "README.md"
    text = readme.read_text()
    old = read_block(text, profile)
    if old is None:
        start, end = _markers(profile)
        raise SystemExit(f"README.md has no {start} ... {end} block: add the two markers where the summary belongs")
    readme.write_text(text.replace(old, what_it_shows(root, profile)))


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="README's 'What it shows' of a committed study, from its verdict tables.")
    p.add_argument("profile", help="the study: reports/<profile>/tables/")
    p.add_argument("--write", action="store_true", help="write it in README.md between its markers")
    args = p.parse_args(argv)
    root = repo_root()
    if args.write:
        write(root, args.profile)
    else:
        print(what_it_shows(root, args.profile), end="")


if __name__ == "__main__":
    main()
