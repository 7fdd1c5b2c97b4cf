"""Dynamic batching in /predict: concurrent requests merged into one forward pass, each answered with exactly
its own rows; MAX_BATCH respected; switched off with DYNAMIC_BATCHING=false; /health answers while a batch
computes; a failure in a merged batch fails only the request that caused it; shutdown answers the queue.

Merging is made deterministic with a gated backend: its first forward pass blocks until the test has queued
the other requests, so these are merged into the next pass (no reliance on the machine's timing).
"""
from __future__ import annotations

import asyncio
import copy
import threading

import numpy as np
import pytest

from service_helpers import app_client, make_settings
from service.app import create_app
from service.batching import Batcher
from service.errors import InferenceFailed, NotReady
from service.inference import forward

pytestmark = pytest.mark.anyio
TEXTS = ["makanannya enak", "pelayanan buruk sekali", "biasa saja", "hotel bersih dan nyaman", "mahal",
         "pemandangan indah", "saya kecewa", "dekat pantai", "tidak akan kembali", "rasanya tidak sebanding"]
POISON = 0.123  # an image whose every value is POISON makes the failing backends below fail


class Gated:
    """A backend proxy whose first forward pass waits for ``release``; records every pass's size."""

    def __init__(self, inner, fail: str | None = None) -> None:
        self._inner, self._fail = inner, fail
        self.entered, self.release = threading.Event(), threading.Event()
        self.sizes: list[int] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def predict_proba(self, batch):
        first = not self.entered.is_set()
        self.entered.set()
        if first and not self.release.wait(30):
            raise TimeoutError("the test never released the gate")
        self.sizes.append(len(batch))
        poisoned = [i for i, x in enumerate(batch) if batch.dtype.kind == "f" and np.all(x == np.float32(POISON))]
        if poisoned and self._fail == "raise":
            raise RuntimeError("poisoned input")
        out = self._inner.predict_proba(batch)
        if poisoned and self._fail == "nan":
            out = out.copy()
            out[poisoned] = np.nan
        return out


def with_backend(registry, arch: str, name: str, wrapper):
    """A shallow copy of ``registry`` whose ``arch/name`` backend is ``wrapper(original)``."""
    entry = copy.copy(registry.get(arch))
    entry.backends = dict(entry.backends)
    entry.backends[name] = wrapper(entry.backends[name])
    return registry.with_entry(entry), entry.backends[name]


async def until(predicate, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def probs_of(response) -> np.ndarray:
    return np.array([p["probabilities"] for p in response.json()["predictions"]])


def images(n: int, seed: int) -> list:
    return np.random.default_rng(seed).random((n, 32, 32, 3)).round(4).tolist()


async def alone(weights_dir, registry, arch: str, backend: str, bodies: list[dict]) -> list[np.ndarray]:
    """Reference: each body sent on its own to an app with batching switched off."""
    app = create_app(make_settings(weights_dir, dynamic_batching=False), registry=registry)
    out = []
    async with app_client(app) as c:
        for body in bodies:
            r = await c.post(f"/predict/{arch}?backend={backend}", json=body)
            assert r.status_code == 200 and r.headers["x-batch-size"] == str(len(next(iter(body.values()))))
            assert r.headers["x-batch-requests"] == "1"
            out.append(probs_of(r))
    return out


@pytest.mark.parametrize("arch,backend", [("cnn", "scratch"), ("lstm", "keras"), ("rnn", "scratch")])
async def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(weights_dir, registry, arch, backend):
    field = "images" if arch == "cnn" else "texts"
    sizes = [1, 2, 1, 3, 1, 1, 2]  # requests of several items: rows must be split back by ranges, in order
    if field == "images":
        bodies = [{"images": images(n, seed)} for seed, n in enumerate(sizes)]
    else:
        bodies = [{"texts": [TEXTS[(i + j) % len(TEXTS)] + f" {i}" for j in range(n)]} for i, n in enumerate(sizes)]
    reg, gated = with_backend(registry, arch, backend, Gated)
    app = create_app(make_settings(weights_dir, batch_wait_ms=2), registry=reg)
    async with app_client(app) as c:
        url = f"/predict/{arch}?backend={backend}"
        first = asyncio.create_task(c.post(url, json=bodies[0]))
        await until(gated.entered.is_set)
        rest = [asyncio.create_task(c.post(url, json=b)) for b in bodies[1:]]
        queue = app.state.inference.queue(gated)
        await until(lambda: queue.queued_items == sum(sizes[1:]))
        gated.release.set()
        responses = [await first] + [await t for t in rest]
    assert [r.status_code for r in responses] == [200] * len(bodies)
    assert gated.sizes == [sizes[0], sum(sizes[1:])]
    assert responses[0].headers["x-batch-size"] == "1" and responses[0].headers["x-batch-requests"] == "1"
    for r in responses[1:]:
        assert r.headers["x-batch-size"] == str(sum(sizes[1:])) and r.headers["x-batch-requests"] == str(len(sizes) - 1)
    reference = await alone(weights_dir, registry, arch, backend, bodies)
    for r, ref, n in zip(responses, reference, sizes):
        got = probs_of(r)
        assert got.shape == (n, len(r.json()["classes"]))
        np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
        assert [p["class_id"] for p in r.json()["predictions"]] == ref.argmax(axis=1).tolist()


async def test_merging_happens_under_plain_concurrency(weights_dir, registry):
    """No gate: 12 single-text requests sent at once within a 200 ms window share forward passes."""
    bodies = [{"texts": [f"{TEXTS[i % len(TEXTS)]} {i}"]} for i in range(12)]
    app = create_app(make_settings(weights_dir, batch_wait_ms=200), registry=registry)
    async with app_client(app) as c:
        responses = await asyncio.gather(*(c.post("/predict/rnn", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses)
    sizes = [int(r.headers["x-batch-size"]) for r in responses]
    assert max(sizes) > 1, sizes
    reference = await alone(weights_dir, registry, "rnn", "scratch", bodies)
    for r, ref in zip(responses, reference):
        np.testing.assert_allclose(probs_of(r), ref, atol=1e-6, rtol=0)


async def test_switched_off_each_request_is_its_own_forward_pass(weights_dir, registry):
    sizes = [1, 3, 2, 1, 1, 2]
    bodies = [{"texts": TEXTS[:n]} for n in sizes]
    reg, gated = with_backend(registry, "lstm", "scratch", Gated)
    app = create_app(make_settings(weights_dir, dynamic_batching=False, batch_wait_ms=200), registry=reg)
    async with app_client(app) as c:
        assert not app.state.inference.batcher.merge
        first = asyncio.create_task(c.post("/predict/lstm", json=bodies[0]))
        await until(gated.entered.is_set)  # the others queue up behind the gated first pass
        rest = [asyncio.create_task(c.post("/predict/lstm", json=b)) for b in bodies[1:]]
        await until(lambda: app.state.inference.queue(gated).queued_items == sum(sizes[1:]))
        gated.release.set()
        responses = [await first] + list(await asyncio.gather(*rest))
    assert [r.headers["x-batch-size"] for r in responses] == [str(n) for n in sizes]
    assert {r.headers["x-batch-requests"] for r in responses} == {"1"}
    assert gated.sizes == sizes  # one pass per request, in arrival order, though all were queued together


async def test_switched_off_forward_passes_run_one_at_a_time(weights_dir, registry):
    """Without merging, requests still go through their queue's one worker: concurrent single-item passes
    in many threads would fight over the GIL and the cores (see service.inference)."""
    class Counting:
        def __init__(self, inner) -> None:
            self._inner, self._lock, self.running, self.most = inner, threading.Lock(), 0, 0

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def predict_proba(self, batch):
            with self._lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                threading.Event().wait(0.02)  # long enough for the other requests to arrive meanwhile
                return self._inner.predict_proba(batch)
            finally:
                with self._lock:
                    self.running -= 1

    reg, counting = with_backend(registry, "cnn", "scratch", Counting)
    app = create_app(make_settings(weights_dir, dynamic_batching=False), registry=reg)
    async with app_client(app) as c:
        responses = await asyncio.gather(*(c.post("/predict/cnn", json={"images": images(1, i)}) for i in range(8)))
    assert all(r.status_code == 200 and r.headers["x-batch-size"] == "1" for r in responses)
    assert counting.most == 1


async def test_batches_never_exceed_max_batch(weights_dir, registry):
    sizes = [1, 2, 2, 2, 1, 1]  # after the gated one: [2, 2] then [2, 1, 1] with MAX_BATCH=4
    reg, gated = with_backend(registry, "rnn", "scratch", Gated)
    app = create_app(make_settings(weights_dir, max_batch=4, batch_wait_ms=2), registry=reg)
    async with app_client(app) as c:
        first = asyncio.create_task(c.post("/predict/rnn", json={"texts": TEXTS[:sizes[0]]}))
        await until(gated.entered.is_set)
        queue, rest = app.state.inference.queue(gated), []
        for k, n in enumerate(sizes[1:], start=1):  # one at a time, so that the queue's order is known
            rest.append(asyncio.create_task(c.post("/predict/rnn", json={"texts": TEXTS[:n]})))
            await until(lambda: queue.queued_items == sum(sizes[1:k + 1]))
        gated.release.set()
        responses = [await first] + [await t for t in rest]
        too_many = await c.post("/predict/rnn", json={"texts": TEXTS[:5]})
    assert gated.sizes == [1, 4, 4]
    assert [r.headers["x-batch-size"] for r in responses] == ["1", "4", "4", "4", "4", "4"]
    assert [r.headers["x-batch-requests"] for r in responses] == ["1", "2", "2", "3", "3", "3"]
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "batch_too_large"


@pytest.mark.parametrize("dynamic_batching", [True, False])
async def test_health_answers_while_a_big_batch_computes(weights_dir, registry, dynamic_batching):
    reg, gated = with_backend(registry, "rnn", "scratch", Gated)
    app = create_app(make_settings(weights_dir, dynamic_batching=dynamic_batching), registry=reg)
    async with app_client(app) as c:
        big = asyncio.create_task(c.post("/predict/rnn", json={"texts": [TEXTS[i % 10] for i in range(256)]}))
        await until(gated.entered.is_set)  # the 256-item forward pass is running (and held)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        health = await asyncio.wait_for(c.get("/health"), timeout=5)
        ready = await asyncio.wait_for(c.get("/ready"), timeout=5)
        elapsed = loop.time() - t0
        assert not big.done()
        gated.release.set()
        r = await big
    assert health.status_code == 200 and ready.status_code == 200 and elapsed < 5
    assert r.status_code == 200 and r.headers["x-batch-size"] == "256" and len(r.json()["predictions"]) == 256


@pytest.mark.parametrize("fail", ["raise", "nan"])
async def test_a_failure_in_a_merged_batch_fails_only_its_own_request(weights_dir, registry, fail):
    """'raise': the merged pass fails, its requests are re-run one by one and only the poisoned one fails
    (500 inference_failed); 'nan': the pass returns NaN rows for one request, only that one fails (503)."""
    reg, gated = with_backend(registry, "cnn", "scratch", lambda b: Gated(b, fail=fail))
    good = [{"images": images(1, seed)} for seed in range(3)]
    poison = {"images": [np.full((32, 32, 3), POISON).tolist()]}
    bodies = [good[0], poison, good[1], good[2]]
    app = create_app(make_settings(weights_dir, batch_wait_ms=2), registry=reg)
    async with app_client(app) as c:
        first = asyncio.create_task(c.post("/predict/cnn", json={"images": images(1, 99)}))
        await until(gated.entered.is_set)
        tasks = [asyncio.create_task(c.post("/predict/cnn", json=b, headers={"X-Request-ID": f"req-{i}"}))
                 for i, b in enumerate(bodies)]
        queue = app.state.inference.queue(gated)
        await until(lambda: queue.queued_items == 4)
        gated.release.set()
        assert (await first).status_code == 200
        responses = [await asyncio.wait_for(t, timeout=30) for t in tasks]
        after = await c.post("/predict/cnn", json=good[0])  # the queue keeps serving
    bad = responses[1]
    assert bad.headers["content-type"].startswith("application/json")
    err = bad.json()["error"]
    assert err["request_id"] == "req-1" and err["field"] == "backend"
    if fail == "raise":
        assert bad.status_code == 500 and err["code"] == "inference_failed" and "poisoned input" in err["reason"]
        assert gated.sizes == [1, 4, 1, 1, 1, 1, 1]
        expected_batch = "1"
    else:
        assert bad.status_code == 503 and err["code"] == "backend_unavailable"
        assert gated.sizes == [1, 4, 1]
        expected_batch = "4"
    reference = await alone(weights_dir, registry, "cnn", "scratch", good)
    for r, ref in zip([responses[0], responses[2], responses[3]], reference):
        assert r.status_code == 200 and r.headers["x-batch-size"] == expected_batch
        np.testing.assert_allclose(probs_of(r), ref, atol=1e-6, rtol=0)
    assert after.status_code == 200


async def test_shutdown_answers_every_queued_request(registry):
    inner = registry.backend("rnn", "scratch")
    gated = Gated(inner)
    batcher = Batcher(forward, max_items=8, wait_s=0.001)
    ids = np.asarray(inner.encode_texts(["enak"]))
    held = asyncio.create_task(batcher.submit(gated, ids))
    await until(gated.entered.is_set)
    queued = asyncio.create_task(batcher.submit(gated, ids))
    await until(lambda: batcher.queues[("rnn", "scratch")].queued_items == 1)
    await batcher.close()
    gated.release.set()
    with pytest.raises(InferenceFailed):
        await asyncio.wait_for(held, timeout=5)
    with pytest.raises(NotReady):
        await asyncio.wait_for(queued, timeout=5)


async def test_an_idle_worker_runs_a_request_at_once_and_what_queues_meanwhile_is_the_next_batch(registry):
    """The default (BATCH_WAIT_MS=0): the first request is computed alone without waiting for company (the gate
    is entered with only it queued, so its pass holds it alone); the requests that arrive while it computes
    are merged into the next pass, all of them."""
    from service.settings import Settings

    assert Settings().batch_wait_ms == 0
    inner = registry.backend("rnn", "scratch")
    gated = Gated(inner)
    batcher = Batcher(forward, max_items=8, wait_s=0)
    texts = TEXTS[:4]
    ids = [np.asarray(inner.encode_texts([t])) for t in texts]
    first = asyncio.create_task(batcher.submit(gated, ids[0]))
    await until(gated.entered.is_set)  # computing, although nothing else was queued and nothing was waited for
    rest = [asyncio.create_task(batcher.submit(gated, x)) for x in ids[1:]]
    await until(lambda: batcher.queues[("rnn", "scratch")].queued_items == 3)
    gated.release.set()
    results = [await first] + [await t for t in rest]
    await batcher.close()
    assert gated.sizes == [1, 3]
    assert [(r.batch_size, r.requests) for r in results] == [(1, 1)] + [(3, 3)] * 3
    for r, x in zip(results, ids):
        np.testing.assert_allclose(r.probs, inner.predict_proba(x), atol=1e-6, rtol=0)


async def test_a_configured_wait_holds_an_opening_batch_until_max_items(registry):
    """BATCH_WAIT_MS > 0: an opening batch waits for more requests (here far longer than the test), and is
    flushed as soon as ``max_items`` items are queued."""
    inner = registry.backend("rnn", "scratch")
    batcher = Batcher(forward, max_items=2, wait_s=3600)
    ids = [np.asarray(inner.encode_texts([t])) for t in TEXTS[:2]]
    first = asyncio.create_task(batcher.submit(inner, ids[0]))
    await asyncio.sleep(0.05)
    assert not first.done() and batcher.queues[("rnn", "scratch")].queued_items == 1, "held open for company"
    second = asyncio.create_task(batcher.submit(inner, ids[1]))
    results = [await asyncio.wait_for(first, 30), await asyncio.wait_for(second, 30)]
    await batcher.close()
    assert [(r.batch_size, r.requests) for r in results] == [(2, 2), (2, 2)]


async def test_with_the_default_settings_a_lone_request_is_not_held_and_concurrent_ones_merge(weights_dir, registry):
    """Through HTTP with the service's defaults (DYNAMIC_BATCHING on, BATCH_WAIT_MS 0): a lone request reaches
    the backend with nothing else queued and no window to wait out (the gate is entered while it is alone,
    and it is answered as a batch of 1); the 6 requests that arrive while it computes come back as one
    forward pass of 6. Batch composition is counted, not timed."""
    reg, gated = with_backend(registry, "rnn", "scratch", Gated)
    app = create_app(make_settings(weights_dir), registry=reg)
    assert app.state.settings.dynamic_batching and app.state.settings.batch_wait_ms == 0
    async with app_client(app) as c:
        lone = asyncio.create_task(c.post("/predict/rnn", json={"texts": TEXTS[:1]}))
        await until(gated.entered.is_set)
        queue = app.state.inference.queue(gated)
        assert queue.queued_items == 0  # computing alone: nothing was waited for
        rest = [asyncio.create_task(c.post("/predict/rnn", json={"texts": [t]})) for t in TEXTS[1:7]]
        await until(lambda: queue.queued_items == 6)
        gated.release.set()
        first, others = await lone, await asyncio.gather(*rest)
    assert gated.sizes == [1, 6]
    assert (first.headers["x-batch-size"], first.headers["x-batch-requests"]) == ("1", "1")
    assert {(r.headers["x-batch-size"], r.headers["x-batch-requests"]) for r in others} == {("6", "6")}
    reference = await alone(weights_dir, registry, "rnn", "scratch", [{"texts": [t]} for t in TEXTS[:7]])
    for r, ref in zip([first, *others], reference):
        np.testing.assert_allclose(probs_of(r), ref, atol=1e-6, rtol=0)
