"""Hot reload: a new version is loaded and verified before it replaces the old one, requests in flight finish
on the old one, a version that fails to load leaves the old one serving (and /models says why), and the
repository endpoints need ADMIN_TOKEN."""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from repository_helpers import ROOT, TOKEN, add_version, app_client, make_settings, tamper
from service.app import create_app
from service.repository import ModelRepository

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IMAGE = np.random.default_rng(3).random((32, 32, 3)).round(4).tolist()


def probs(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.array([p["probabilities"] for p in r.json()["predictions"]])


async def test_a_corrupt_new_version_leaves_the_old_one_serving(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", 1, seed=0)
    registry = ModelRepository(repo).load_all()
    async with app_client(create_app(make_settings(repo, admin_token=TOKEN), registry=registry)) as c:
        before = probs(await c.post("/predict/m", json={"images": [IMAGE]}))
        v2 = add_version(repo, "m", 2, seed=1)
        tamper(v2 / "weights.npz")
        tamper(v2 / "model.keras")
        r = await c.post("/repository/models/m/load", headers=AUTH)
        assert r.status_code == 200, r.text
        states = {row["version"]: row for row in r.json()["versions"]}
        assert states[1]["state"] == "READY" and states[2]["state"] == "UNAVAILABLE"
        assert "tampered" in states[2]["reason"]
        r = await c.post("/predict/m", json={"images": [IMAGE]})
        assert r.json()["version"] == 1 and np.array_equal(probs(r), before)
        info = (await c.get("/models")).json()["models"]["m"]
        assert info["version"] == 1 and info["versions"] == [1, 2]
        assert info["all_versions"]["2"]["state"] == "failed" and "weights.npz" in info["all_versions"]["2"]["reason"]
        r = await c.post("/predict/m/versions/2", json={"images": [IMAGE]})
        assert r.status_code == 503 and "tampered" in r.json()["error"]["reason"]
        # the files of version 1 itself replaced by broken ones: the loaded copy keeps serving, /models says why
        (repo / "m" / "1" / "manifest.json").write_text("{ not json")
        r = await c.post("/repository/models/m/load", headers=AUTH)
        assert {row["version"]: row["state"] for row in r.json()["versions"]}[1] == "READY"
        assert np.array_equal(probs(await c.post("/predict/m", json={"images": [IMAGE]})), before)
        info = (await c.get("/models")).json()["models"]["m"]
        assert "manifest.json is not valid JSON" in info["reload_error"]
        assert (await c.get("/ready")).status_code == 200


async def test_admin_token_guards_the_repository_endpoints(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "m", None)
    registry = ModelRepository(repo).load_all()
    async with app_client(create_app(make_settings(repo), registry=registry)) as c:  # ADMIN_TOKEN unset
        for path in ("/repository/index", "/repository/models/m/load", "/repository/models/m/unload"):
            r = await c.post(path, headers=AUTH)
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled", path
    async with app_client(create_app(make_settings(repo, admin_token=TOKEN), registry=registry)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": TOKEN}):
            r = await c.post("/repository/models/m/unload", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", headers
        assert (await c.post("/predict/m", json={"images": [IMAGE]})).status_code == 200
        r = await c.post("/repository/index", headers=AUTH)
        assert r.status_code == 200 and r.json() == [{"name": "m", "version": 1, "state": "READY", "reason": None}]
        r = await c.post("/repository/models/m/unload", headers=AUTH)
        assert r.status_code == 200 and r.json()["versions"][0]["state"] == "UNLOADED"
        r = await c.post("/predict/m", json={"images": [IMAGE]})
        assert r.status_code == 404
        assert (await c.post("/repository/index", headers=AUTH, json={"ready": True})).json() == []
        assert (await c.get("/ready")).status_code == 503  # no model loaded
        r = await c.post("/repository/models/m/load", headers=AUTH)
        assert r.status_code == 200 and r.json()["versions"][0]["state"] == "READY"
        assert (await c.post("/predict/m", json={"images": [IMAGE]})).status_code == 200
        assert (await c.post("/repository/models/nope/load", headers=AUTH)).status_code == 404


async def test_polling_picks_up_new_and_removed_models(tmp_path):
    repo = tmp_path / "repo"
    add_version(repo, "a", None)
    registry = ModelRepository(repo).load_all()
    async with app_client(create_app(make_settings(repo, repository_poll_s=0.2), registry=registry)) as c:
        add_version(repo, "b", 7, arch="rnn")
        for _ in range(300):
            if "b" in (await c.get("/models")).json()["models"]:
                break
            await asyncio.sleep(0.1)
        r = await c.post("/predict/b", json={"texts": ["enak sekali"]})
        assert r.status_code == 200 and r.json()["version"] == 7
        shutil.rmtree(repo / "a")
        for _ in range(300):
            if "a" not in (await c.get("/models")).json()["models"]:
                break
            await asyncio.sleep(0.1)
        assert (await c.post("/predict/a", json={"images": [IMAGE]})).status_code == 404


def test_hot_swap_under_concurrent_requests(tmp_path):
    """A live server answers 8 clients sending requests back to back while version 2 is published and
    loaded: no request fails, every answer is exactly version 1's or version 2's, each client sees the
    switch once (1...1 2...2), and every request sent after the load call returned is served by version 2."""
    from conftest_live import start_server  # noqa: E402

    repo = tmp_path / "repo"
    add_version(repo, "m", 1, seed=0)
    server = start_server(repo, tmp_path / "server.log", ADMIN_TOKEN=TOKEN, BATCH_WAIT_MS="1")
    try:
        base, clients, stop = server.base_url, 8, threading.Event()
        with httpx.Client(base_url=base, timeout=60) as c:
            ref1 = probs(c.post("/predict/m/versions/1", json={"images": [IMAGE]}))
        seen: list[list[tuple[float, int, np.ndarray, int]]] = [[] for _ in range(clients)]

        def client(k: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as c:
                while not stop.is_set():
                    t = time.monotonic()
                    r = c.post("/predict/m", json={"images": [IMAGE]})
                    body = r.json()
                    seen[k].append((t, r.status_code, np.array(body["predictions"][0]["probabilities"])
                                    if r.status_code == 200 else None, body.get("version")))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        add_version(repo, "m", 2, seed=1)
        with httpx.Client(base_url=base, timeout=120, headers=AUTH) as c:
            t_load = time.monotonic()
            r = c.post("/repository/models/m/load")
            t_loaded = time.monotonic()
        assert r.status_code == 200, r.text
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join()
        with httpx.Client(base_url=base, timeout=60) as c:
            ref2 = probs(c.post("/predict/m/versions/2", json={"images": [IMAGE]}))
        assert not np.allclose(ref1, ref2, atol=1e-3), "the two versions must answer differently"
        rows = [row for per in seen for row in per]
        failed = [row for row in rows if row[1] != 200]
        assert not failed, failed[:3]
        for _, _, p, version in rows:  # merged batches may move the last float bits: 1e-6, versions differ by >1e-3
            assert version in (1, 2)
            mine, other = (ref1, ref2) if version == 1 else (ref2, ref1)
            assert np.abs(p - mine[0]).max() < 1e-6 and np.abs(p - other[0]).max() > 1e-3
        for per in seen:
            versions = [v for *_, v in per]
            assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == 2, versions
        assert all(v == 2 for t, _, _, v in rows if t > t_loaded)
        swap = {"requests": len(rows), "errors": len(failed), "clients": clients,
                "v1_answers": sum(v == 1 for *_, v in rows), "v2_answers": sum(v == 2 for *_, v in rows),
                "load_call_s": round(t_loaded - t_load, 3), "load_reported_s": r.json()["seconds"],
                "machine": "2 cores shared with other jobs"}
        (ROOT / "reports").mkdir(exist_ok=True)
        (ROOT / "reports" / "hot_swap.json").write_text(json.dumps(swap, indent=1) + "\n")
        print("\nhot swap:", swap)
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=20)
