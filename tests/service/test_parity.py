"""/parity: correct figures, cached per (arch, weights, limit), computed off the event loop, 503 without data."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service_helpers import app_client, make_settings
from scratch_models.datasets import CIFAR10_CLASSES, NUSAX_CLASSES
from service.app import create_app
from service.parity import compare, macro_f1
from tiny_weights import TEXTS

pytestmark = pytest.mark.anyio


class FakeSplit:
    """A test split made here (random images, the tiny model's texts), counting its loads; ``delay`` seconds
    of blocking work per load stand in for reading 10,000 images."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.calls = delay, 0
        rng = np.random.default_rng(3)
        self.images = rng.random((300, 32, 32, 3), dtype=np.float32)
        self.image_labels = rng.integers(0, 10, 300)
        self.texts = [TEXTS[i % len(TEXTS)] + f" {i}" for i in range(40)]
        self.text_labels = rng.integers(0, 3, 40)

    def __call__(self, arch, data_dir):
        self.calls += 1
        time.sleep(self.delay)  # blocking, as real decoding is: must not stall the event loop
        if arch == "cnn":
            return self.images, self.image_labels, CIFAR10_CLASSES
        return list(self.texts), self.text_labels, NUSAX_CLASSES


def parity_app(weights_dir, registry, loader, **settings):
    return create_app(make_settings(weights_dir, **settings), registry=registry, test_split_loader=loader)


async def test_parity_figures_match_a_direct_computation(weights_dir, registry):
    split = FakeSplit()
    async with app_client(parity_app(weights_dir, registry, split)) as c:
        r = await c.get("/parity", params={"arch": "cnn", "limit": 200})
        assert r.status_code == 200, r.text
        body = r.json()
    keras_b, scratch_b = registry.backend("cnn", "keras"), registry.backend("cnn", "scratch")
    x, y = split.images[:200], split.image_labels[:200]
    expected = compare(keras_b.predict_proba(x), scratch_b.predict_proba(x), y)
    assert body["n"] == 200 and body["split"] == "test" and body["arch"] == "cnn"
    assert body["agreement"] == expected["agreement"] == 1.0
    assert body["max_abs_prob_diff"] == pytest.approx(expected["max_abs_prob_diff"]) and body["max_abs_prob_diff"] < 1e-5
    assert body["keras"] == pytest.approx(expected["keras"]) and body["scratch"] == pytest.approx(expected["scratch"])


async def test_parity_is_cached_per_arch_and_limit(weights_dir, registry):
    split = FakeSplit(delay=0.3)
    async with app_client(parity_app(weights_dir, registry, split)) as c:
        first = (await c.get("/parity?arch=rnn&limit=30")).json()
        second = (await c.get("/parity?arch=rnn&limit=30")).json()
        assert first["cached"] is False and second["cached"] is True
        assert second["elapsed_s"] < 0.05 <= first["elapsed_s"]
        assert {k: v for k, v in first.items() if k not in ("cached", "elapsed_s")} == \
               {k: v for k, v in second.items() if k not in ("cached", "elapsed_s")}
        third = (await c.get("/parity?arch=rnn&limit=10")).json()
        assert third["cached"] is False and third["n"] == 10
        everything = (await c.get("/parity?arch=rnn")).json()
        assert everything["n"] == 40 and everything["limit"] is None
        assert split.calls == 1  # the test split is read once per data set


async def test_parity_without_arch_lists_all_three(weights_dir, registry):
    async with app_client(parity_app(weights_dir, registry, FakeSplit())) as c:
        r = await c.get("/parity?limit=20")
        assert r.status_code == 200
        assert [p["arch"] for p in r.json()] == ["cnn", "rnn", "lstm"]
        assert all(p["n"] == 20 and p["agreement"] == 1.0 for p in r.json())


async def test_parity_does_not_block_other_requests(weights_dir, registry):
    split = FakeSplit(delay=2.0)
    async with app_client(parity_app(weights_dir, registry, split)) as c:
        parity = asyncio.create_task(c.get("/parity?arch=cnn"))
        await asyncio.sleep(0.1)
        latencies = []
        for _ in range(5):
            t0 = time.perf_counter()
            assert (await c.get("/health")).status_code == 200
            assert (await c.post("/predict/rnn", json={"texts": ["enak"]})).status_code == 200
            latencies.append(time.perf_counter() - t0)
        assert not parity.done(), "the parity call should still be computing"
        assert max(latencies) < 0.5, latencies
        assert (await parity).status_code == 200


async def test_concurrent_identical_calls_share_one_computation(weights_dir, registry):
    computed = []
    split = FakeSplit(delay=0.5)
    async with app_client(parity_app(weights_dir, registry, split)) as c:
        app_parity = c._transport.app.state.parity
        original = app_parity._compute

        def counting(*args):
            computed.append(threading.get_ident())
            return original(*args)

        app_parity._compute = counting
        results = await asyncio.gather(*(c.get("/parity?arch=lstm&limit=25") for _ in range(4)))
    assert [r.status_code for r in results] == [200] * 4
    assert len(computed) == 1


async def test_parity_without_data_dir_is_503_naming_it(client):
    r = await client.get("/parity?arch=cnn&limit=5")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "data_unavailable" and "DATA_DIR" in err["message"] and err["field"] == "DATA_DIR"


async def test_parity_with_an_empty_data_dir_is_503(weights_dir, registry, tmp_path):
    async with app_client(create_app(make_settings(weights_dir, data_dir=tmp_path), registry=registry)) as c:
        r = await c.get("/parity?arch=lstm")
        assert r.status_code == 503
        assert "DATA_DIR" in r.json()["error"]["message"] and str(tmp_path) in r.json()["error"]["message"]
        # the failure is not cached: the same call fails again rather than serving a stale error
        assert (await c.get("/parity?arch=lstm")).status_code == 503


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for n, k in ((50, 3), (7, 10), (500, 10), (3, 3)):
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
