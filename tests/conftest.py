"""Shared fixtures: the real data mirror in ../shared/data, when present."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The local mirror of the real data; skips the test when it is absent."""
    if not (SHARED_DATA / "SHA256SUMS").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
