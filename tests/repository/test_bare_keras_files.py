"""People's own Keras files (../shared/fixtures/peer-models/) dropped into a model repository as bare files:
converted once, served by both backends, answering as Keras does (Keras loads the same file independently
here, by content, and computes the reference). Figures go to reports/repository_peer_models.json.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from repository_helpers import ROOT, app_client, make_settings
from service.app import create_app
from service.repository import ModelRepository
from service.repository import sources

pytestmark = pytest.mark.anyio
RESULTS: dict[str, dict] = {}
N = 48
TEXTS = ["Makanannya enak dan pelayanannya ramah sekali!", "Saya kecewa, pesanan datang terlambat.",
         "Tempatnya biasa saja.", "Harga mahal tapi rasanya tidak sebanding", "Hotel ini bersih dan nyaman"]


def keras_reference(path, x, tmp_path):
    import keras
    with open(path, "rb") as fh:
        ext = "h5" if fh.read(8) == b"\x89HDF\r\n\x1a\n" else "keras"
    copy = tmp_path / f"reference.{ext}"
    shutil.copyfile(path, copy)
    model = keras.saving.load_model(copy, compile=False, safe_mode=True)
    return np.asarray(model(x.astype(model.inputs[0].dtype), training=False)), model


def cifar_or_random(n: int) -> tuple[np.ndarray, str]:
    import os
    from pathlib import Path
    root = Path(os.environ.get("DATA_DIR", "")) / "cifar10" / "test"
    if root.is_dir():
        from PIL import Image
        paths = sorted(p for d in sorted(root.iterdir()) for p in sorted(d.iterdir())[:n // 10 + 1])[:n]
        return np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in paths]), "CIFAR-10 test JPEGs"
    return np.random.default_rng(0).random((n, 32, 32, 3), dtype=np.float32), "uniform random images"


async def predict(client, model, body, backend):
    r = await client.post(f"/predict/{model}?backend={backend}", json=body)
    assert r.status_code == 200, r.text
    return np.array([p["probabilities"] for p in r.json()["predictions"]]), r.json()


def record(name, ref, got_by_backend, inputs):
    row = {"n": int(len(ref)), "inputs": inputs}
    for backend, got in got_by_backend.items():
        row[backend] = {"agreement": float(np.mean(got.argmax(1) == ref.argmax(1))),
                        "max_abs_dp": float(np.abs(got - ref).max())}
        assert row[backend]["agreement"] == 1.0, (name, backend, row)
        assert row[backend]["max_abs_dp"] <= 1e-4, (name, backend, row)
    RESULTS[name] = row


@pytest.fixture(scope="module", autouse=True)
def write_report():
    yield
    if RESULTS:
        path = ROOT / "reports" / "repository_peer_models.json"
        merged = {**(json.loads(path.read_text()) if path.exists() else {}), **RESULTS}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=1) + "\n")
        tmp.replace(path)


@pytest.mark.parametrize("filename", ["cnn_3_layers_legacy_h5.keras", "cnn_fixed_batch64.h5"])
async def test_bare_cnn_file_answers_as_keras(filename, peer_dir, tmp_path):
    repo = tmp_path / "repo"
    (repo / "peer").mkdir(parents=True)
    shutil.copyfile(peer_dir / filename, repo / "peer" / filename)
    (repo / "peer" / "labels.txt").write_text("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                          "frog", "horse", "ship", "truck"]) + "\n")
    registry = ModelRepository(repo).load_all()
    entry = registry.get("peer")
    assert entry.ready and set(entry.backends) == {"scratch", "keras"}, (entry.failures, entry.reason)
    assert entry.source == "converted" and entry.classes[3] == "cat"
    converted = list((repo / "peer" / sources.CONVERTED_DIR).iterdir())
    assert len(converted) == 1 and {"manifest.json", "architecture.json", "weights.npz"} <= {
        p.name for p in converted[0].iterdir()}
    x, what = cifar_or_random(N)
    ref, _ = keras_reference(repo / "peer" / filename, x, tmp_path)
    async with app_client(create_app(make_settings(repo), registry=registry)) as c:
        got = {b: (await predict(c, "peer", {"inputs": x.tolist()}, b))[0] for b in ("scratch", "keras")}
        info = (await c.get("/models")).json()["models"]["peer"]
        assert info["input"]["shape"] == [32, 32, 3] and info["source"] == "converted"
        assert info["parity"]["agreement"] == 1.0 and info["parity"]["max_abs_prob_diff"] <= 1e-4
    record(filename, ref, got, what)
    # A second start reuses the conversion: nothing is written again (TensorFlow is needed only for keras).
    stamp = converted[0].stat().st_mtime_ns
    again = ModelRepository(repo).load_all().get("peer")
    assert again.ready and converted[0].stat().st_mtime_ns == stamp and len(list(converted[0].parent.iterdir())) == 1


async def test_bare_rnn_with_a_vectorizer_file_takes_texts(peer_dir, tmp_path):
    repo = tmp_path / "repo"
    (repo / "sentiment").mkdir(parents=True)
    for name in ("rnn_bi24_spatialdropout.keras", "rnn_bi24_spatialdropout_vectorizer.keras"):
        shutil.copyfile(peer_dir / name, repo / "sentiment" / name)
    registry = ModelRepository(repo).load_all()
    entry = registry.get("sentiment")
    assert entry.ready and set(entry.backends) == {"scratch", "keras"}, (entry.failures, entry.reason)
    assert entry.request_fields == ("texts", "inputs") and entry.input_spec.sequence_length == 80
    import keras
    holder = keras.saving.load_model(peer_dir / "rnn_bi24_spatialdropout_vectorizer.keras", compile=False)
    (layer,) = [l for l in holder.layers if isinstance(l, keras.layers.TextVectorization)]
    texts = TEXTS * 4
    ids = np.asarray(layer(texts))
    ref, _ = keras_reference(repo / "sentiment" / "rnn_bi24_spatialdropout.keras", ids, tmp_path)
    async with app_client(create_app(make_settings(repo), registry=registry)) as c:
        got = {b: (await predict(c, "sentiment", {"texts": texts}, b))[0] for b in ("scratch", "keras")}
        by_ids, body = await predict(c, "sentiment", {"inputs": ids.tolist()}, "scratch")
        assert body["classes"] == ["class_0", "class_1", "class_2"]  # no labels.txt
    np.testing.assert_allclose(by_ids, got["scratch"], atol=1e-7)
    record("rnn_bi24_spatialdropout.keras (+ vectorizer file, texts)", ref, got, "NusaX-like texts")


async def test_bare_lstm_without_vectorizer_takes_token_ids_only(peer_dir, tmp_path):
    repo = tmp_path / "repo"
    (repo / "lstm-peer" / "3").mkdir(parents=True)
    shutil.copyfile(peer_dir / "lstm_functional_masked.keras", repo / "lstm-peer" / "3" / "model.keras")
    registry = ModelRepository(repo).load_all()
    entry = registry.get("lstm-peer")
    assert entry.ready and entry.version == 3 and entry.request_fields == ("inputs",), (entry.failures, entry.reason)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, entry.input_spec.vocabulary_size, size=(N, 100)).astype(np.int32)
    ids[np.arange(100)[None, :] >= rng.integers(1, 100, size=N)[:, None]] = 0
    ref, _ = keras_reference(repo / "lstm-peer" / "3" / "model.keras", ids, tmp_path)
    async with app_client(create_app(make_settings(repo), registry=registry)) as c:
        got = {b: (await predict(c, "lstm-peer", {"inputs": ids.tolist()}, b))[0] for b in ("scratch", "keras")}
        r = await c.post("/predict/lstm-peer", json={"texts": ["enak"]})
        assert r.status_code == 422 and "no text vectorizer" in r.json()["error"]["reason"]
        r = await c.post("/predict/lstm-peer/versions/3", json={"inputs": [[entry.input_spec.vocabulary_size] + [0] * 99]})
        assert r.status_code == 422 and r.json()["error"]["field"] == "inputs[0]"
    record("lstm_functional_masked.keras (token ids)", ref, got, "random token ids, random lengths")


async def test_read_only_model_folder_converts_into_the_cache(peer_dir, tmp_path, monkeypatch):
    """(Tests run as root, for whom chmod does not make a folder read-only: the writability probe is told so.)"""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    (repo / "ro").mkdir(parents=True)
    shutil.copyfile(peer_dir / "cnn_fixed_batch64.h5", repo / "ro" / "model.h5")
    real = sources._writable_dir
    monkeypatch.setattr(sources, "_writable_dir", lambda p: None if repo in p.parents or p == repo else real(p))
    entry = ModelRepository(repo, cache_dir=cache).load_all().get("ro")
    assert entry.ready and entry.source == "converted (cache)"
    assert not (repo / "ro" / sources.CONVERTED_DIR).exists() and len(list(cache.iterdir())) == 1
    monkeypatch.setattr(sources, "_writable_dir", lambda p: None)
    entry = ModelRepository(repo, cache_dir=tmp_path / "cache2").load_all().get("ro")
    assert entry.ready and entry.source == "converted (memory)" and "read-only" in entry.note
