"""README.md's "Does it hold?" table for a committed study: made from its verdict tables, never typed.

    python -m sdnet.readme cpu            # print the block
    python -m sdnet.readme cpu --write    # (re)write it in README.md, between its markers

Each chapter of ``reports/<profile>/`` saves its verdict table (``tables/<chapter>/verdict.csv``,
columns claim, paper, here, verdict: the table RESULTS.md opens the chapter with). RESULTS.md
shows them in full; a landing page needs one screen. The block made here has

- one line of conditions (data, width, epochs, seeds, the networks' accuracy), read from what the
  study ran with (its ``dvc.lock``) and measured (``train/<run>.json``), so that the cells below
  need not repeat the data set or the number of seeds;
- one row per claim of the paper, every cell cut to its essentials: the claim as written (linked
  to its chapter's executed notebook), the paper's number without its parenthetical notes, our
  first measurement, and the verdict's leading words plus its first number;
- one line listing the checks of our own (claims marked ``(ours)``) with their verdicts.

The rules read only the four columns every chapter writes, so rows added to a chapter appear here
without any change to this module. ``tests/test_reports.py`` checks that README carries exactly
the block of the committed tables, so the summary cannot drift from RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import yaml

from sdnet import marked
from sdnet.config import command_line
from sdnet.stale import lock_path
from sdnet.stages.summarize import SECTIONS
from sdnet.chapters.verdicts import verdict_kind
from sdnet.params import repo_root

OURS = "(ours)"
BLOCK = "does-it-hold"  # the kind of its block in README.md (sdnet.marked)


# --- cutting a cell to its essentials -------------------------------------------------------------


def top_level_parts(text: str, separators: str) -> list[str]:
    """``text`` split at each of ``separators`` that is outside parentheses and brackets (an
    interval "[+2.5, +8.8]" stays whole), parts stripped."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        if depth == 0 and char in separators:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def without_parentheses(text: str, keep=lambda inner: False) -> str:
    """``text`` without its top-level parenthetical groups (and the space before each), except
    those whose inner text ``keep`` accepts."""
    out, depth, group = [], 0, []
    for char in text:
        if depth == 0 and char != "(":
            out.append(char)
            continue
        group.append(char)
        depth += (char == "(") - (char == ")")
        if depth == 0:
            whole = "".join(group)
            if keep(whole[1:-1]):
                out.append(whole)
            else:
                while out and out[-1] == " ":
                    out.pop()
            group = []
    out += group  # an unbalanced "(" is kept as written
    return "".join(out).strip()


def _has_number(text: str) -> bool:
    return bool(re.search(r"\d", text))


def _first_with_number(parts: list[str]) -> str:
    return next((p for p in parts if _has_number(p)), parts[0] if parts else "")


def compact_paper(cell: str) -> str:
    """The paper's column: a note in parentheses ("(not tested in the paper: there ...)") becomes
    its leading words; otherwise the number without its parenthetical notes."""
    cell = cell.strip()
    if cell.startswith("(") and cell.endswith(")") and not without_parentheses(cell):
        return cell[1:-1].split(":", 1)[0].strip()
    return without_parentheses(cell)


def compact_here(cell: str, data: str) -> str:
    """Our column: the first clause (up to ";") that carries a number, without the data set and
    seed counts the conditions line states once, and without notes in parentheses unless they
    carry a number ("(clean there 53.3%)" stays). A series ("lambda: zeros: 0: 49%; 0.1: 50%; ...
    5: 83%") keeps its first and last entries, so that it does not read as its first point alone."""
    bare = re.sub(rf"(^|,\s*){re.escape(data)}(?=[:,]|$)", "", cell).lstrip(",: ")
    bare = without_parentheses(bare, keep=lambda inner: _has_number(inner) and not (inner.startswith(data) or re.fullmatch(r"\d+ seeds?", inner)))
    parts = top_level_parts(bare, ";")
    if len(parts) > 2 and all(re.match(r"[\d.]+: ", p) for p in parts[1:]):
        return f"{parts[0]} ... {parts[-1]}"
    return _first_with_number(parts)


def compact_verdict(verdict: str) -> str:
    """The verdict's leading words in bold, then its first clause that carries a number ("holds:
    -0.47 ± 0.17 points over 3 seeds (a gap ...), inside ±1 point" -> "**holds**: -0.47 ± 0.17
    points over 3 seeds"). A verdict without a colon keeps its first clause."""
    kind = verdict_kind(verdict)
    if ":" not in verdict:
        return f"**{top_level_parts(without_parentheses(verdict), ';')[0]}**"
    detail = _first_with_number(top_level_parts(verdict.split(":", 1)[1], ",;"))
    # Leading words with a number ("+1.6 points on one seed: cannot be told from seed noise") are
    # the measurement, not the verdict: then the words after the colon are, number or not.
    keep = _has_number(detail) or _has_number(kind)
    return f"**{kind}**: {without_parentheses(detail)}" if keep else f"**{kind}**"


# --- the block ------------------------------------------------------------------------------------


def read_verdicts(verdict_csv: Path) -> list[dict[str, str]]:
    with verdict_csv.open(newline="") as f:
        return list(csv.DictReader(f))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def recorded_params(root: Path, profile: str) -> dict:
    """The parameters ``train@resnet18`` ran with, as the study's lock file recorded them (a
    committed study's ``reports/<profile>/dvc.lock``, or dvc.lock for the active profile)."""
    lock_file = lock_path(root, profile)
    if not lock_file.is_file():
        raise SystemExit(f"no lock file records a run of profile {profile!r} ({lock_file.relative_to(root)})")
    recorded = yaml.safe_load(lock_file.read_text())["stages"]["train@resnet18"]["params"]["params.yaml"]
    if f"profiles.{profile}.train" not in recorded:
        raise SystemExit(f"{lock_file.relative_to(root)} records no run of profile {profile!r}")
    return recorded


def conditions(root: Path, profile: str) -> tuple[str, str]:
    """(the data set's display name, one line of what the study ran and measured, beside the paper's)."""
    data, ran = measured(root, profile)
    return data, f"*Conditions:* {ran}; the paper's networks are width 64, trained 220 epochs on the official files."


def measured(root: Path, profile: str) -> tuple[str, str]:
    """(the data set's display name, what the study ran and measured: data, width, epochs, seeds
    and the two networks' top-1)."""
    recorded = recorded_params(root, profile)[f"profiles.{profile}.train"]
    accuracies, seeds, data = [], set(), ""
    for run, name in (("resnet18", "ResNet-18"), ("sdnet18", "SDNet-18")):
        record = json.loads((root / "reports" / profile / "train" / f"{run}.json").read_text())
        (dataset,) = record["datasets"].values()
        data = next(iter(dataset["seeds"].values()))["dataset"]
        seeds.add(len(dataset["seeds"]))
        spread = f" ± {dataset['top1_std']:.2f}" if dataset.get("top1_std") is not None else ""
        accuracies.append(f"{name} {dataset['top1_mean']:.2f}{spread}% ({_count(len(dataset['seeds']), 'seed')})")
    if len(seeds) == 1:  # the usual case: say the number of seeds once
        accuracies = [a.rsplit(" (", 1)[0] for a in accuracies]
    runs = _count(seeds.pop(), "seed") if len(seeds) == 1 else "seeds as given"
    return data, f"{data}, width {recorded['width']}, {recorded['epochs']} epochs, {runs} ({' and '.join(accuracies)} top-1)"


def claims_table(root: Path, profile: str, data: str) -> tuple[list[str], list[str]]:
    """(the table's lines for the paper's claims, ``claim: verdict`` for our own checks)."""
    lines = ["| claim | paper | here | verdict |", "|---|---|---|---|"]
    ours = []
    for chapter, _, _ in SECTIONS:
        notebook = f"reports/{profile}/notebooks/{chapter}.ipynb"
        for row in read_verdicts(root / "reports" / profile / "tables" / chapter / "verdict.csv"):
            if row["claim"].startswith(OURS):
                ours.append(f"{row['claim'].removeprefix(OURS).strip()}: **{verdict_kind(row['verdict'])}**")
                continue
            cells = (f"[{int(chapter[:2])}]({notebook}) {row['claim']}", compact_paper(row["paper"]),
                     compact_here(row["here"], data), compact_verdict(row["verdict"]))
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines, ours


def does_it_hold(root: Path, profile: str) -> str:
    """The block for ``reports/<profile>`` (markers included)."""
    start, end = marked.markers(BLOCK, profile)
    data, line = conditions(root, profile)
    table, ours = claims_table(root, profile, data)
    lines = [start, line, "", *table]
    if ours:
        lines += ["", "Our own checks, beyond the paper: " + "; ".join(ours) + "."]
    lines.append(end)
    return "\n".join(lines) + "\n"


def read_block(text: str, profile: str) -> str | None:
    """The block for ``profile`` in ``text``, or None."""
    return marked.read(text, BLOCK, profile)


def write(root: Path, profile: str) -> None:
    """Replace README.md's block for ``profile`` by the committed tables' (the markers must be there)."""
    marked.write(root / "README.md", BLOCK, profile, does_it_hold(root, profile))


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="README's 'Does it hold?' table of a committed study, from its verdict tables.")
    p.add_argument("profile", help="the study: reports/<profile>/tables/")
    p.add_argument("--write", action="store_true", help="write it in README.md between its markers")
    args = p.parse_args(argv)
    root = repo_root()
    if args.write:
        write(root, args.profile)
    else:
        print(does_it_hold(root, args.profile), end="")


if __name__ == "__main__":
    main()
