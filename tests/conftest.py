"""Shared fixtures: the real VOC2007 sample (skipped with a reason when absent) and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VOC_SAMPLE_ENV = "WSJDS_VOC_SAMPLE"
DEFAULT_VOC_SAMPLE = REPO.parent / "shared" / "data" / "voc2007_sample"


def voc_sample_dir() -> Path:
    """The 120-image VOC2007 sample: $WSJDS_VOC_SAMPLE, else ../shared/data/voc2007_sample."""
    return Path(os.environ.get(VOC_SAMPLE_ENV, DEFAULT_VOC_SAMPLE))


@pytest.fixture(scope="session")
def voc_sample() -> Path:
    """Path of the sample's VOC2007 directory; skips when the sample is not on this machine."""
    root = voc_sample_dir() / "VOC2007"
    if not (root / "ImageSets" / "Main" / "trainval.txt").is_file():
        pytest.skip(f"VOC2007 sample not found at {root} (set {VOC_SAMPLE_ENV} to the folder holding "
                    "VOC2007/; a user's clone has no ../shared)")
    return root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
