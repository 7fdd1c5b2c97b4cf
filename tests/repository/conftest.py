"""Fixtures of the repository tests (the helpers they use live in ``repository_helpers``)."""
from __future__ import annotations

import pytest

from repository_helpers import PEER_DIR


@pytest.fixture(scope="session")
def peer_dir():
    if not PEER_DIR.is_dir():
        pytest.skip(f"peer models folder {PEER_DIR} is absent (see its README)")
    return PEER_DIR
