"""What the repository holds: its binary files follow one rule
(docs/reproducibility.md, "What the repository holds"), and .gitignore admits exactly those."""

import subprocess
from pathlib import PurePosixPath

import pytest
import yaml

from helpers import ROOT

MB = 1_000_000
# A committed profile's trained networks: finished ones (weights.pt, float32 weights for a forward)
# and unfinished ones (resume.pt: the weights and their SGD momentum, twice the size); and the
# per-image hits a stage keeps beside its tables (hits.npz: packed bits, sdnet.hits). A network's
# size grows with the square of its width: the limits are those of width 16, scaled the same way
# for a study at width 32 (the `wide` regime study); no wider network is committed.
LIMITS = {"weights.pt": 5 * MB, "resume.pt": 6 * MB, "hits.npz": 2 * MB}
WIDEST = 32


def width(path: str) -> int:
    """The width of the network at reports/<profile>/models/<run>/..., as params.yaml trains it."""
    parts = PurePosixPath(path).parts
    train = yaml.safe_load((ROOT / "params.yaml").read_text())["profiles"][parts[1]]["train"]
    return train.get("per_run", {}).get(parts[3], {}).get("width", train.get("width", 64))


def limit(path: str) -> float:
    name = PurePosixPath(path).name
    if name == "hits.npz":
        return LIMITS[name]
    w = width(path)
    assert w <= WIDEST, f"{path}: a width-{w} network; the repository holds networks up to width {WIDEST}"
    return LIMITS[name] * max(1.0, (w / 16) ** 2)


def is_shipped(path: str) -> bool:
    """reports/<profile>/models/<run>/<dataset>/seed<k>/{weights,resume}.pt, or
    reports/<profile>/results/<stage>/hits.npz"""
    parts = PurePosixPath(path).parts
    if len(parts) == 5 and parts[0] == "reports" and parts[2] == "results":
        return parts[4] == "hits.npz"
    return len(parts) == 7 and parts[0] == "reports" and parts[2] == "models" and parts[5].startswith("seed") and parts[6] in LIMITS


def tracked() -> list[str]:
    try:
        return subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")[:-1]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_the_only_binary_files_are_shipped_networks_hits_and_figures():
    for path in tracked():
        file = ROOT / path
        if not file.is_file():
            continue
        with file.open("rb") as f:
            binary = b"\0" in f.read(8192)
        if not binary:
            continue
        if path.endswith(".png"):
            assert path.startswith("reports/") and "/figures/" in path, f"{path}: a figure outside a study's figures/"
            continue
        assert is_shipped(path), f"{path} is a binary file the repository does not hold (docs/reproducibility.md, 'What the repository holds')"
        most = limit(path)
        assert file.stat().st_size < most, f"{path}: {file.stat().st_size / MB:.1f} MB, over {most / MB:.0f} MB"


@pytest.mark.parametrize("path,admitted", [
    ("reports/cpu/models/sdnet18/cifar10-jpeg/seed0/weights.pt", True),
    ("reports/quick/models/resnet18/synthetic/seed2/resume.pt", True),
    ("reports/cpu/models/sdnet18/cifar10-jpeg/seed0/checkpoint.pt", False),
    ("reports/cpu/models/sdnet18/cifar10-jpeg/seed0/.resume.pt.abc.tmp", False),
    ("runs/sdnet18/weights.pt", False),
    ("data/cifar10-jpeg.tar.xz", False),
    ("data/cifar10-jpeg.cache.npz", False),
    ("data/released/cifar10/sdnet18/model_best.pth.tar", False),
    ("reports/cpu/figures/03_noise_robustness/tradeoff.png", True),
    ("reports/cpu/results/noise/hits.npz", True),
    ("reports/cpu/results/noise/other.npz", False),
    ("reports/cpu/hits.npz", False),
])
def test_gitignore_admits_exactly_the_shipped_networks(path, admitted):
    tracked()  # skips outside a git checkout
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0
    assert ignored != admitted, path


def test_a_network_may_be_as_large_as_its_width_makes_it_up_to_width_32():
    assert limit("reports/cpu/models/sdnet18/cifar10-jpeg/seed0/weights.pt") == 5 * MB
    assert limit("reports/wide/models/sdnet18/cifar10-jpeg/seed0/resume.pt") == 24 * MB  # twice the width, four times the size
    assert limit("reports/cpu/results/noise/hits.npz") == 2 * MB
    with pytest.raises(AssertionError, match="up to width 32"):
        limit("reports/fast/models/sdnet18/cifar10/seed0/weights.pt")
