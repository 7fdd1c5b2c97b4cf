"""The page's routes in process (fast, default run): GET / and its files, the loss figures, nothing outside
service/static or any other file of the model repository, and /docs, /redoc referring to local assets only.
The page itself is tested in a real browser (tests/browser)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.routes.ui import STATIC_DIR

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def test_the_page_and_its_files_are_served_with_a_same_origin_policy(client):
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    head = await client.head("/")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(r.content))
    for src in re.findall(r'(?:src|href)="(/ui/[^"]+)"', r.text):
        asset = await client.get(src)
        assert asset.status_code == 200, src
        assert asset.content == (STATIC_DIR / src.removeprefix("/ui/")).read_bytes()
    assert not re.search(r'(?:src|href)="(?:https?:)?//', r.text)  # nothing from another origin
    samples = (await client.get("/ui/samples/samples.json")).json()["samples"]
    assert 6 <= len(samples) <= 10
    for s in samples:
        assert (await client.get(f"/ui/{s['file']}")).content[:3] == b"\xff\xd8\xff"  # a JPEG


@pytest.mark.parametrize("path", ["/ui/../pyproject.toml", "/ui/%2e%2e/%2e%2e/pyproject.toml", "/ui/nope.js",
                                  "/ui/models/cnn/manifest.json", "/ui/models/..%2f..%2fpyproject.toml/loss.png",
                                  "/ui/models/nope/loss.png"])
async def test_nothing_else_is_served(client, path):
    r = await client.get(path)
    assert r.status_code == 404 and r.json()["error"]["code"] in ("not_found",), (path, r.text)


async def test_loss_figures_come_from_the_model_repository(weights_dir, registry, tmp_path):
    """A repository folder of its own (the routes read only settings' folder; the loaded models are the tiny ones)."""
    from service.app import create_app
    from service_helpers import app_client, make_settings

    (tmp_path / "rnn" / "3").mkdir(parents=True)
    (tmp_path / "rnn" / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\nrnn")
    (tmp_path / "rnn" / "3" / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\nrnn v3")
    (tmp_path / "rnn" / "3" / "weights.npz").write_bytes(b"secret")
    async with app_client(create_app(make_settings(tmp_path), registry=registry)) as c:
        r = await c.get("/ui/models/rnn/loss.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content.endswith(b"rnn")
        assert (await c.get("/ui/models/rnn/loss.png?version=3")).content.endswith(b"rnn v3")
        # an unversioned model is its own version 1
        assert (await c.get("/ui/models/rnn/loss.png?version=1")).content.endswith(b"rnn")
        assert (await c.get("/ui/models/rnn/3/weights.npz")).status_code == 404
        assert (await c.get("/ui/models/cnn/loss.png")).status_code == 404
        assert (await c.get("/ui/config.json")).json()["max_body_bytes"] == make_settings(tmp_path).max_body_bytes


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_from_the_service(client, page):
    r = await client.get(page)
    assert r.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    for ref in refs:
        asset = await client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 100, ref
