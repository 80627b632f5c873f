"""Write data.dvc: the official CIFAR-10/100 files under data/, pinned exactly as `dvc add data` would.

Nobody needs the 340 MB of data to write the pin, because DVC (3.x, dvc-data's
``Tree.digest``) identifies a directory by

    md5( json.dumps(sorted([{"md5": <file md5>, "relpath": <posix path>}, ...] by relpath),
                    sort_keys=True) )  +  ".dir"

and records the total size and the number of files beside it. The file checksums are the
published ones (``sdnet.data.cifar.OFFICIAL_FILES``, the one place they are written down), so
data.dvc can be generated from them. With it, ``dvc status data.dvc`` checks a local copy, and a
user with a DVC remote can ``dvc pull`` the data; a missing data/ does not stop ``dvc repro`` of
stages that do not depend on it.

    python scripts/make_data_dvc.py            # rewrite data.dvc
    python scripts/make_data_dvc.py --check    # exit 1 if data.dvc differs from what it would write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs from a checkout without installing the package

from sdnet.data.cifar import OFFICIAL_FILES  # noqa: E402


def directory_md5(files: dict[str, tuple[int, str]]) -> str:
    """DVC's hash of a directory holding ``files`` ({relative posix path: (bytes, md5)})."""
    listing = sorted(({"md5": md5, "relpath": path} for path, (_, md5) in files.items()), key=lambda entry: entry["relpath"])
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def dvc_file(files: dict[str, tuple[int, str]], path: str = "data") -> str:
    """The text `dvc add <path>` writes for a directory holding ``files`` (DVC 3 layout)."""
    return (
        "outs:\n"
        f"- md5: {directory_md5(files)}\n"
        f"  size: {sum(size for size, _ in files.values())}\n"
        f"  nfiles: {len(files)}\n"
        "  hash: md5\n"
        f"  path: {path}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the existing data.dvc instead of writing it")
    args = parser.parse_args()
    target, text = ROOT / "data.dvc", dvc_file(OFFICIAL_FILES)
    if args.check:
        current = target.read_text() if target.is_file() else ""
        print("data.dvc is up to date" if current == text else "data.dvc differs from the official checksums; run this script")
        sys.exit(0 if current == text else 1)
    target.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
