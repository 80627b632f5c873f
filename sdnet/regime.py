""""Does it depend on the regime?": the headline verdicts of chapters 3 and 4, one column per study.

    python -m sdnet.regime            # print the table
    python -m sdnet.regime --write    # (re)write reports/regimes/RESULTS.md and README.md's block

The committed ``cpu`` study trains width-16 networks on the CIFAR-10 JPEG copy. A verdict found
there may be about SDNet, or about that regime: a network that learned from JPEG-smoothed images
may be favoured by a smoothing filter in front of it, and a 16-atom stem may denoise differently
from the paper's 64. The regime studies (params.yaml profiles) rerun chapters 3 and 4 with one
thing changed each:

- ``wide``: the same data and recipe at width 32;
- ``mini-exact`` and ``mini-jpeg``: the exact-pixel CIFAR-10 mini set (5,170 training images),
  trained on its exact pixels and on the same images JPEG round-tripped as the copy was made,
  both tested on the exact pixels (the mini set is small: these networks sit far below 88%, and
  only the comparison between the two columns is about the pixels).

Each column is a committed study (``reports/<profile>/`` with its lock file), each cell the
verdict its chapter wrote (``tables/<chapter>/verdict.csv``) cut to its leading words and first
number, as README's "Does it hold?" table cuts them (:mod:`sdnet.readme`): every cell is computed
by the chapters' own code under their own definitions, never typed here. A study not committed
yet is a column of "not run".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from sdnet import marked
from sdnet.config import command_line
from sdnet.params import repo_root
from sdnet.readme import compact_verdict, measured, read_verdicts, without_parentheses
from sdnet.stale import committed_profiles

BLOCK = "does-it-depend"  # the kind of its block in README.md (sdnet.marked)
TABLE = Path("reports/regimes/RESULTS.md")

# The studies compared, in the table's order: profile -> what it changes.
REGIMES = {
    "cpu": "JPEG copy, width 16",
    "wide": "JPEG copy, width 32",
    "mini-exact": "mini set, exact pixels",
    "mini-jpeg": "mini set, JPEG-trained",
}

# The rows: (what a reader asks, chapter, the claim as the chapter words it, up to its end or a
# prefix that singles it out).
ROWS = [
    ("tuned λ against ResNet-18, under noise", "03_noise_robustness",
     "with lambda tuned at test time, SDNet-18 is more robust to noise than ResNet-18"),
    ("tuned λ against ResNet-18 behind a tuned denoiser, under noise", "03_noise_robustness",
     "(ours) SDNet-18's tuned lambda beats ResNet-18 with a tuned test-time denoiser, for a defender who knows the noise and its severity"),
    ("raising λ against attacks, the paper's protocol", "04_adversarial",
     "a larger test-time lambda raises robust accuracy substantially (the paper's protocol"),
    ("raising λ against attacks, white-box", "04_adversarial",
     "a larger test-time lambda raises robust accuracy substantially (white-box)"),
    ("λ against a blur at equal clean accuracy, the paper's protocol", "04_adversarial",
     "(ours) at equal clean accuracy, SDNet-18's test-time lambda earns more than an unknown blur earns ResNet-18, under the paper's protocol"),
    ("λ against a blur at equal clean accuracy, white-box", "04_adversarial",
     "(ours) at equal clean accuracy, SDNet-18's test-time lambda earns more than an unknown blur earns ResNet-18, white-box"),
]
NOT_RUN = "not run"


def cell(verdict: str) -> str:
    """A verdict cut to its leading words and first number, without parenthetical notes."""
    return without_parentheses(compact_verdict(verdict))


def studies(root: Path) -> list[str]:
    """The regimes the repository holds a committed run of, in :data:`REGIMES` order."""
    committed = set(committed_profiles(root))
    return [p for p in REGIMES if p in committed]


def column(root: Path, profile: str) -> list[str]:
    """One study's cells, in :data:`ROWS` order ("not run" where its chapter has no such row)."""
    verdicts: dict[str, list[dict[str, str]]] = {}
    cells = []
    for _, chapter, claim in ROWS:
        if chapter not in verdicts:
            file = root / "reports" / profile / "tables" / chapter / "verdict.csv"
            verdicts[chapter] = read_verdicts(file) if file.is_file() else []
        found = [r for r in verdicts[chapter] if r["claim"].startswith(claim)]
        cells.append(cell(found[0]["verdict"]) if found else NOT_RUN)
    return cells


def table(root: Path) -> str:
    """The table (Markdown lines, a line of conditions per study below it)."""
    profiles = list(REGIMES)
    done = set(studies(root))
    columns = {p: column(root, p) if p in done else [NOT_RUN] * len(ROWS) for p in profiles}
    lines = ["| verdict | " + " | ".join(f"{REGIMES[p]} (`{p}`)" for p in profiles) + " |",
             "|---" * (len(profiles) + 1) + "|"]
    for i, (question, chapter, _) in enumerate(ROWS):
        lines.append(f"| [{int(chapter[:2])}] {question} | " + " | ".join(columns[p][i].replace("|", "\\|") for p in profiles) + " |")
    notes = [f"- `{p}`: {measured(root, p)[1]}." for p in profiles if p in done]
    known = yaml.safe_load((root / "params.yaml").read_text()).get("profiles", {})
    missing = [f"`{p}`" for p in profiles if p not in done and p in known]
    if missing:
        notes.append(f"- {', '.join(missing)}: no committed run yet (`dvc repro reports/<profile>/dvc.yaml` runs one).")
    planned = [f"`{p}`" for p in profiles if p not in known]
    if planned:
        notes.append(f"- {', '.join(planned)}: not a profile of params.yaml yet.")
    return "\n".join(lines + [""] + notes) + "\n"


def block(table_md: str) -> str:
    """README's block (markers included) around :func:`table`'s text."""
    start, end = marked.markers(BLOCK, "regimes")
    return f"{start}\n{table_md}{end}\n"


def results_md(table_md: str) -> str:
    """``reports/regimes/RESULTS.md``: :func:`table`'s text, with what each column changes."""
    return "\n".join([
        "# Does a verdict depend on the regime?",
        "",
        "Generated by `python -m sdnet.regime --write` from each study's verdict tables "
        "(`reports/<profile>/tables/<chapter>/verdict.csv`); do not edit by hand. Each cell is the verdict "
        "its chapter wrote for that study, under the chapter's own definitions (held out; the worst case over "
        "the attacks; clean levels counted down from each study's own undefended ResNet-18).",
        "",
        "The `cpu` study trains width-16 networks on the CIFAR-10 JPEG copy. Each other column changes one "
        "thing: `wide` the width (32), `mini-exact` and `mini-jpeg` the pixels (the exact-pixel mini set, "
        "5,170 training images, trained on its exact pixels and on the same images JPEG round-tripped as the "
        "copy was made, both tested on exact pixels). The mini-set networks are far weaker than the `cpu` "
        "ones: compare the two mini columns with each other, not with `cpu`.",
        "",
        table_md,
    ])


def write(root: Path) -> None:
    """Write reports/regimes/RESULTS.md and README.md's block (its markers must be there)."""
    table_md = table(root)
    out = root / TABLE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(results_md(table_md))
    marked.write(root / "README.md", BLOCK, "regimes", block(table_md))


@command_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="The headline verdicts of chapters 3 and 4 in every committed regime study, side by side.")
    p.add_argument("--write", action="store_true", help=f"write {TABLE} and README.md's block")
    args = p.parse_args(argv)
    root = repo_root()
    if args.write:
        write(root)
    else:
        print(table(root), end="")


if __name__ == "__main__":
    main()
