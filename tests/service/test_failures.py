"""A backend that cannot load makes only that backend unavailable (503 with the reason), never the service."""
from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from service_helpers import app_client, make_settings
from service.app import create_app
from service.registry import ModelRegistry

pytestmark = pytest.mark.anyio
GOOD = np.full((32, 32, 3), 0.5).tolist()


@pytest.fixture
def weights_copy(weights_dir, tmp_path):
    dst = tmp_path / "weights"
    shutil.copytree(weights_dir, dst)
    return dst


def tamper(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_tampered_keras_file_disables_only_keras(weights_copy):
    tamper(weights_copy / "cnn" / "model.keras")
    registry = ModelRegistry(weights_copy).load_all()
    async with app_client(create_app(make_settings(weights_copy), registry=registry)) as c:
        r = await c.post("/predict/cnn?backend=keras", json={"images": [GOOD]})
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "backend_unavailable" and "tampered" in err["reason"] and "model.keras" in err["reason"]
        assert r.headers["retry-after"]
        assert (await c.post("/predict/cnn?backend=scratch", json={"images": [GOOD]})).status_code == 200
        assert (await c.post("/predict/rnn?backend=keras", json={"texts": ["enak"]})).status_code == 200
        ready = await c.get("/ready")  # ready: every backend either loaded or failed with a reason
        assert ready.status_code == 200
        status = ready.json()["models"]["cnn"]
        assert status["keras"]["status"] == "unavailable" and "sha256" in status["keras"]["reason"]
        assert status["scratch"]["status"] == "ready"
        models = (await c.get("/models")).json()["models"]
        assert models["cnn"]["available_backends"] == ["scratch"]
        assert (await c.get("/health")).status_code == 200


async def test_tampered_scratch_weights_disable_only_scratch(weights_copy):
    tamper(weights_copy / "lstm" / "weights.npz")
    registry = ModelRegistry(weights_copy).load_all()
    async with app_client(create_app(make_settings(weights_copy), registry=registry)) as c:
        r = await c.post("/predict/lstm", json={"texts": ["enak"]})  # the default backend is out: name one
        assert r.status_code == 422 and r.json()["error"]["field"] == "backend"
        assert "weights.npz" in r.json()["error"]["reason"] and "keras" in r.json()["error"]["reason"]
        r = await c.post("/predict/lstm?backend=scratch", json={"texts": ["enak"]})
        assert r.status_code == 503 and "weights.npz" in r.json()["error"]["reason"]
        assert (await c.post("/predict/lstm?backend=keras", json={"texts": ["enak"]})).status_code == 200


async def test_tampered_file_caught_by_the_engine_itself(weights_copy):
    """Manifest and file changed together: the engine's own checksum (architecture.json) still refuses it."""
    import json
    from scratch_models.io_utils import sha256_file

    path = weights_copy / "rnn" / "weights.npz"
    tamper(path)
    manifest = json.loads((weights_copy / "rnn" / "manifest.json").read_text())
    manifest["files"]["weights.npz"] = sha256_file(path)
    (weights_copy / "rnn" / "manifest.json").write_text(json.dumps(manifest))
    entry = ModelRegistry(weights_copy).load_all().get("rnn")
    assert "scratch" not in entry.backends and "keras" in entry.backends
    assert "scratch engine could not load" in entry.failures["scratch"]


async def test_missing_tensorflow_disables_only_keras(weights_copy, monkeypatch):
    for name in ("tensorflow", "keras"):
        monkeypatch.setitem(sys.modules, name, None)  # `import tensorflow` now raises ImportError
    registry = ModelRegistry(weights_copy).load_all()
    monkeypatch.undo()
    for arch in ("cnn", "rnn", "lstm"):
        entry = registry.get(arch)
        assert list(entry.backends) == ["scratch"], arch
        assert "TensorFlow/Keras is not installed" in entry.failures["keras"]
    async with app_client(create_app(make_settings(weights_copy), registry=registry)) as c:
        assert (await c.post("/predict/cnn", json={"images": [GOOD]})).status_code == 200
        r = await c.post("/predict/cnn?backend=keras", json={"images": [GOOD]})
        assert r.status_code == 503 and "not installed" in r.json()["error"]["reason"]


async def test_missing_and_empty_model_folders(weights_copy):
    """A removed folder is no model (404 naming the known ones); an empty one is a model that failed (503)."""
    shutil.rmtree(weights_copy / "rnn")
    for path in (weights_copy / "lstm").iterdir():
        path.unlink()
    registry = ModelRegistry(weights_copy).load_all()
    async with app_client(create_app(make_settings(weights_copy), registry=registry)) as c:
        r = await c.post("/predict/rnn", json={"texts": ["enak"]})
        assert r.status_code == 404 and r.json()["error"]["details"]["known"] == ["cnn", "lstm"]
        r = await c.post("/predict/lstm", json={"texts": ["enak"]})
        assert r.status_code == 503 and "manifest.json not found" in r.json()["error"]["reason"]
        assert (await c.post("/predict/cnn", json={"images": [GOOD]})).status_code == 200
        info = (await c.get("/models")).json()["models"]["lstm"]
        assert info["input"] is None and info["state"] == "failed" and "no Keras file" in info["reason"]
        assert (await c.get("/ready")).status_code == 200  # cnn serves; lstm failed with its reason


async def test_tampered_vectorizer_disables_the_text_arch(weights_copy):
    path = weights_copy / "lstm" / "vectorizer.json"
    path.write_text(path.read_text().replace('"output_sequence_length": 12', '"output_sequence_length": 13'))
    entry = ModelRegistry(weights_copy).load_all().get("lstm")
    assert not entry.backends
    assert "vectorizer.json" in entry.failures["keras"]


async def test_ready_is_503_while_loading(weights_dir):
    """The lifespan loads models in the background: /health answers at once, /ready and /predict say 503."""
    app = create_app(make_settings(weights_dir))
    async with app_client(app) as c:
        registry = app.state.registry
        if not registry.loaded:  # loading takes ~1 s; catch it in flight
            assert (await c.get("/health")).status_code == 200
            r = await c.get("/ready")
            assert r.status_code == 503 and r.json()["state"] == "loading"
            r = await c.post("/predict/cnn", json={"images": [GOOD]})
            assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert registry.wait(timeout=120)
        assert (await c.get("/ready")).status_code == 200
        assert (await c.post("/predict/cnn", json={"images": [GOOD]})).status_code == 200
