"""Where the real-data tests (marker real_data) find the shared data: the folder named by the
PORTAL_SHARED_DATA environment variable, or else ../shared/data beside the checkout. Where it is
absent they skip, and the test summary says how many did (tests/conftest.py)."""
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("PORTAL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
MISSING = "shared data not on this machine"


def needs(folder):
    """Skip unless `folder` (inside SHARED_DATA) is there, saying where it was looked for."""
    return pytest.mark.skipif(not folder.is_dir(), reason=f"{MISSING}: no {folder} (set PORTAL_SHARED_DATA to the shared data folder)")


def skipped_for_missing_data(skipped_reports):
    return [report for report in skipped_reports if MISSING in str(report.longrepr)]
