"""scripts/noise_vs_jpeg.py: its JPEG round trip matches the copy's encoding, its copy lookup finds
the right files, and its summary computes what reports/noise-vs-jpeg/README.md reports."""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT, SHARED
from sdnet.data.cifar import read_split

spec = importlib.util.spec_from_file_location("noise_vs_jpeg", ROOT / "scripts" / "noise_vs_jpeg.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def test_round_trip_is_lossy_but_close():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-3, 4, size=(4, 3, 32, 32)), axis=-1).clip(-100, 100) + 128
    images = smooth.astype(np.uint8)
    out = script.jpeg_round_trip(images)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images) and 25 < script.psnr(out, images) < 60


@pytest.mark.skipif(not (SHARED / "cifar-mini").is_dir() or not (SHARED / "cifar10-jpeg.tar.xz").is_file(), reason="needs ../shared/data")
def test_copy_files_are_the_same_pictures_and_our_encoding_matches_them():
    test = read_split("cifar10", SHARED / "cifar-mini", "test", verify=False)
    exact = test.images[:200].numpy()
    copy = script.copy_test_images(SHARED / "cifar10-jpeg.tar.xz", test.labels[:200].numpy())
    assert 28 < script.psnr(copy, exact) < 32  # the copy's stated 30 dB: the right pictures
    assert script.psnr(script.jpeg_round_trip(exact), copy) > 40  # our encoding is the copy's


def test_summary_reads_training_and_tuned_lambda(tmp_path):
    rows = [("resnet18", 0.1, "clean", 0, 80.0)] + [("resnet18", 0.1, n, s, 40.0) for n in script.NOISES for s in (1, 2)]
    rows += [("sdnet18", lam, "clean", 0, 80.0) for lam in (0.1, 0.5)]
    rows += [("sdnet18", lam, n, s, 40.0 + 20 * (lam == 0.5)) for lam in (0.1, 0.5) for n in script.NOISES for s in (1, 2)]
    table = pd.DataFrame([dict(model=m, trained_on="exact", tested_on="exact", noise=n, severity=s, lam=lam, top1=t) for m, lam, n, s, t in rows])
    script.summarize(table, tmp_path)
    lines = (tmp_path / "summary.md").read_text().splitlines()
    assert lines[2].startswith("| resnet18 | - | exact | exact | 80.0 |") and lines[2].endswith("| 40.0 | 50% |")
    assert lines[3].startswith("| sdnet18 | training |") and lines[3].endswith("| 40.0 | 50% |")
    assert lines[4].startswith("| sdnet18 | tuned |") and lines[4].endswith("| 60.0 | 75% |")
