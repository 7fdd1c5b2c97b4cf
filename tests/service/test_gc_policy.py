"""The garbage-collector policy: the loaded state is frozen once the models are loaded, frozen garbage is
collected at the next settle (after a version is retired), and the service turns it on by default."""
from __future__ import annotations

import gc
import time
import weakref

import pytest

from service.gc_policy import Freezer, settle
from service.settings import Settings


class Cyclic:
    """An object kept alive only by a reference cycle (as a model's layers and graph are)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the test process is not frozen


def test_settle_freezes_what_is_alive_and_frees_it_at_the_next_settle():
    obj = Cyclic()
    ref = weakref.ref(obj)
    settle()
    assert gc.get_freeze_count() > 0
    del obj  # garbage now, but frozen: collections skip it
    gc.collect()
    assert ref() is not None
    settle()  # unfreeze, collect, freeze again
    assert ref() is None


def test_changed_settles_once_after_a_burst():
    freezer = Freezer(enabled=True, delay_s=0.2)
    obj = Cyclic()
    ref = weakref.ref(obj)
    freezer.settle()
    del obj
    for _ in range(3):  # a reload retiring three versions
        freezer.changed()
    deadline = time.monotonic() + 10
    while freezer.settled < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert freezer.settled == 2  # one settle at load, one for the burst
    assert ref() is None
    freezer.close()


def test_disabled_freezer_leaves_the_collector_alone():
    gc.unfreeze()
    freezer = Freezer(enabled=False, delay_s=0.01)
    freezer.settle()
    freezer.changed()
    time.sleep(0.05)
    assert gc.get_freeze_count() == 0 and freezer.settled == 0


def test_the_service_freezes_by_default(monkeypatch):
    monkeypatch.delenv("GC_FREEZE", raising=False)
    assert Settings().gc_freeze is True
    monkeypatch.setenv("GC_FREEZE", "0")
    assert Settings().gc_freeze is False


@pytest.mark.anyio
async def test_the_lifespan_freezes_once_the_models_are_loaded(weights_dir, registry):
    from service.app import create_app

    from service_helpers import app_client, make_settings
    gc.unfreeze()
    async with app_client(create_app(make_settings(weights_dir, gc_freeze=True), registry=registry)) as client:
        deadline = time.monotonic() + 30
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gc.get_freeze_count() > 0
        assert (await client.get("/ready")).status_code == 200
