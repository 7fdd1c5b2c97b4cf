"""Fixtures of the engine suite; the helpers live in ``engine_helpers`` (a unique module name)."""
from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import DATA_DIR, PEER_DIR, make_keras_cnn, make_keras_text


HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    # Keras' UserWarnings (e.g. "GlobalMaxPooling1D ... will destroy the mask") are expected in this folder.
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::UserWarning:keras.*"))


@pytest.fixture(scope="session")
def nusax():
    """NusaX-Sentiment (Indonesian) from DATA_DIR; skipped when the data is absent."""
    from scratch_models.datasets import DataNotFoundError, load_nusax
    if not (DATA_DIR / "nusax-sentiment" / "indonesian" / "test.csv").is_file():
        pytest.skip(f"NusaX data not found under {DATA_DIR} (set DATA_DIR)")
    try:
        return load_nusax(DATA_DIR)
    except DataNotFoundError as exc:  # pragma: no cover
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def peer_dir() -> Path:
    if not PEER_DIR.is_dir():
        pytest.skip(f"peer models folder {PEER_DIR} is absent (see its README)")
    return PEER_DIR


@pytest.fixture(scope="session")
def keras_cnn():
    return make_keras_cnn()


@pytest.fixture(scope="session")
def keras_text():
    return make_keras_text()


@pytest.fixture(scope="session")
def keras_bitext():
    return make_keras_text(102, bidirectional=True)
