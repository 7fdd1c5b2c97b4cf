"""Fixtures of the training suite; the helpers live in ``training_helpers`` (a unique module name).

The worst relative error each comparison reached is collected and printed at the end of the run.
"""
from __future__ import annotations

import pytest

WORST: dict[str, tuple[float, str]] = {}


def pytest_configure(config):
    # Keras' UserWarnings (e.g. "GlobalMaxPooling1D ... will destroy the mask") are expected here.
    config.addinivalue_line("filterwarnings", "ignore::UserWarning:keras.*")


@pytest.fixture
def record_error(request):
    """``record_error(kind, value)``: keep the worst value of each kind with the test that reached it."""
    def record(kind: str, value: float) -> None:
        if value > WORST.get(kind, (-1.0, ""))[0]:
            WORST[kind] = (value, request.node.name)
    return record


def pytest_terminal_summary(terminalreporter):
    if WORST:
        terminalreporter.section("training suite: worst relative errors")
        for kind, (value, where) in sorted(WORST.items()):
            terminalreporter.write_line(f"{kind:<34} {value:.2e}  ({where})")
