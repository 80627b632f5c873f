"""Blocks of a Markdown file that a command owns: the lines from ``<!-- kind:profile -->`` to
``<!-- /kind:profile -->``, found, read and replaced. README.md and each RESULTS.md carry such
blocks (``does-it-hold``: :mod:`sdnet.readme`; ``stale-results``: :mod:`sdnet.stale`), so that a
command rewrites its own lines and leaves the prose around them alone."""

from __future__ import annotations

import re
from pathlib import Path


def markers(kind: str, profile: str) -> tuple[str, str]:
    """The first and the last line of the ``kind`` block of ``profile``."""
    return f"<!-- {kind}:{profile} -->", f"<!-- /{kind}:{profile} -->"


def find(text: str, kind: str, profile: str) -> re.Match | None:
    """Where the block is in ``text`` (its last newline included), or None."""
    start, end = markers(kind, profile)
    return re.search(re.escape(start) + r".*?" + re.escape(end) + r"\n", text, flags=re.S)


def read(text: str, kind: str, profile: str) -> str | None:
    """The block's text, or None."""
    found = find(text, kind, profile)
    return found.group(0) if found else None


def write(path: Path, kind: str, profile: str, block: str) -> None:
    """Replace the ``kind`` block of ``profile`` in the file at ``path`` by ``block`` (markers
    included); the file must already hold the two markers where the block belongs."""
    text = path.read_text()
    old = read(text, kind, profile)
    if old is None:
        start, end = markers(kind, profile)
        raise SystemExit(f"{path.name} has no {start} ... {end} block: add the two markers where the table belongs")
    path.write_text(text.replace(old, block))
