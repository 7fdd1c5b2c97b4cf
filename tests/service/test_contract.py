"""Contract tests, in process (httpx.ASGITransport): every endpoint's status codes and response shapes."""
from __future__ import annotations

import numpy as np
import pytest

from service_helpers import png_base64
from tiny_weights import SEQUENCE_LENGTH, read_manifest

pytestmark = pytest.mark.anyio


async def test_health(client):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["uptime_s"] >= 0


async def test_ready_lists_every_arch_and_backend(client):
    r = await client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["state"] == "loaded"
    assert set(body["models"]) == {"cnn", "rnn", "lstm"}
    for arch, backends in body["models"].items():
        assert {name: s["status"] for name, s in backends.items()} == {"scratch": "ready", "keras": "ready"}, arch


async def test_models_reports_manifest_metadata(client, weights_dir):
    r = await client.get("/models")
    assert r.status_code == 200
    models = r.json()["models"]
    for arch in ("cnn", "rnn", "lstm"):
        manifest = read_manifest(weights_dir / arch)
        info = models[arch]
        assert info["classes"] == manifest["classes"]
        assert info["params"] == manifest["params"]
        assert info["weights_sha256"] == manifest["files"]
        assert info["metrics"] == manifest["metrics"]
        assert sorted(info["available_backends"]) == ["keras", "scratch"]
    assert models["cnn"]["input"] == {"kind": "image", "shape": [32, 32, 3], "dtype": "float32",
                                      "sequence_length": None, "vocabulary_size": None, "range": [0.0, 1.0],
                                      "request_field": "images", "request_fields": ["images", "inputs"]}
    assert models["cnn"]["version"] == 1 and models["cnn"]["versions"] == [1] and models["cnn"]["state"] == "ready"
    assert models["lstm"]["input"]["sequence_length"] == SEQUENCE_LENGTH
    assert models["lstm"]["input"]["request_field"] == "texts"


@pytest.mark.parametrize("backend", ["scratch", "keras"])
async def test_predict_cnn_nested_list(client, weights_dir, rng_images, backend):
    images = (rng_images / 255.0).tolist()
    r = await client.post(f"/predict/cnn?backend={backend}", json={"images": images})
    assert r.status_code == 200, r.text
    body = r.json()
    manifest = read_manifest(weights_dir / "cnn")
    assert body["arch"] == "cnn" and body["backend"] == backend
    assert body["classes"] == manifest["classes"]
    served = "weights.npz" if backend == "scratch" else "model.keras"
    assert body["model_sha256"] == manifest["files"][served]
    assert len(body["predictions"]) == len(images)
    for p in body["predictions"]:
        probs = np.asarray(p["probabilities"])
        assert probs.shape == (10,) and np.all(probs >= 0)
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert p["class_id"] == int(probs.argmax()) and p["label"] == body["classes"][p["class_id"]]


async def test_default_backend_is_scratch(client, rng_images):
    r = await client.post("/predict/cnn", json={"images": [(rng_images[0] / 255.0).tolist()]})
    assert r.status_code == 200 and r.json()["backend"] == "scratch"


async def test_backends_agree_on_the_same_inputs(client, rng_images):
    images = (rng_images / 255.0).tolist()
    a = (await client.post("/predict/cnn?backend=scratch", json={"images": images})).json()
    b = (await client.post("/predict/cnn?backend=keras", json={"images": images})).json()
    pa = np.array([p["probabilities"] for p in a["predictions"]])
    pb = np.array([p["probabilities"] for p in b["predictions"]])
    assert np.abs(pa - pb).max() < 1e-5
    assert [p["class_id"] for p in a["predictions"]] == [p["class_id"] for p in b["predictions"]]


@pytest.mark.parametrize("backend", ["scratch", "keras"])
async def test_base64_png_equals_nested_list(client, rng_images, backend):
    """A 32x32 PNG is lossless: the base64 path gives exactly the nested-list answer."""
    url = f"/predict/cnn?backend={backend}"
    by_list = (await client.post(url, json={"images": (rng_images / 255.0).tolist()})).json()
    by_png = (await client.post(url, json={"images": [png_base64(img) for img in rng_images]})).json()
    for x, y in zip(by_list["predictions"], by_png["predictions"]):
        assert x["class_id"] == y["class_id"]
        np.testing.assert_allclose(x["probabilities"], y["probabilities"], atol=1e-6)


async def test_images_of_any_size_and_mode_are_accepted(client):
    """A large JPEG, a grayscale PNG, an RGBA PNG and a data: URL -- all converted to RGB 32x32."""
    big = np.random.default_rng(1).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    small = big[:32, :32]
    images = [png_base64(big, "JPEG", quality=90), png_base64(big, "PNG", mode="L"),
              png_base64(small, "PNG", mode="RGBA"), "data:image/png;base64," + png_base64(small)]
    r = await client.post("/predict/cnn", json={"images": images})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 4
    # The RGBA copy drops its (opaque) alpha: same pixels, same answer as the data URL of the RGB copy.
    np.testing.assert_allclose(preds[2]["probabilities"], preds[3]["probabilities"], atol=1e-7)


async def test_base64_with_line_breaks_is_accepted(client, rng_images):
    """`base64` (coreutils) wraps at 76 columns; the service ignores whitespace inside the string."""
    b64 = png_base64(rng_images[0])
    wrapped = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76)) + "\n"
    a = (await client.post("/predict/cnn", json={"images": [b64]})).json()
    b = (await client.post("/predict/cnn", json={"images": [wrapped]})).json()
    assert a["predictions"] == b["predictions"]


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
@pytest.mark.parametrize("backend", ["scratch", "keras"])
async def test_predict_texts(client, weights_dir, arch, backend):
    texts = ["Makanannya enak sekali", "Pelayanan buruk, saya kecewa", "kata-kata yang tidak dikenal xyz"]
    r = await client.post(f"/predict/{arch}", params={"backend": backend}, json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["classes"] == ["negative", "neutral", "positive"]
    served = "weights.npz" if backend == "scratch" else "model.keras"
    assert body["model_sha256"] == read_manifest(weights_dir / arch)["files"][served]
    assert [len(p["probabilities"]) for p in body["predictions"]] == [3, 3, 3]


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
async def test_text_backends_agree(client, arch):
    texts = ["Hotel ini bersih dan nyaman", "Harga mahal tapi rasanya tidak sebanding", "biasa saja"]
    out = {}
    for backend in ("scratch", "keras"):
        r = await client.post(f"/predict/{arch}?backend={backend}", json={"texts": texts})
        out[backend] = np.array([p["probabilities"] for p in r.json()["predictions"]])
    assert np.abs(out["scratch"] - out["keras"]).max() < 1e-5


async def test_long_texts_are_truncated_like_text_vectorization(client):
    """Words past the sequence length are ignored: appending words changes nothing."""
    words = "makanannya enak dan pelayanannya ramah sekali hotel ini bersih nyaman dekat pantai".split()
    assert len(words) == SEQUENCE_LENGTH
    base = " ".join(words)
    longer = base + " pelayanan buruk saya kecewa " * 50
    r = await client.post("/predict/lstm", json={"texts": [base, longer]})
    assert r.status_code == 200
    p = r.json()["predictions"]
    assert p[0]["probabilities"] == p[1]["probabilities"]


async def test_max_batch_is_accepted(weights_dir, registry, rng_images):
    from service_helpers import app_client, make_settings
    from service.app import create_app

    app = create_app(make_settings(weights_dir, max_batch=8), registry=registry)
    async with app_client(app) as c:
        images = [(rng_images[i % 4] / 255.0).tolist() for i in range(8)]
        r = await c.post("/predict/cnn", json={"images": images})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 8
        r = await c.post("/predict/cnn", json={"images": images + images[:1]})
        assert r.status_code == 413


async def test_request_id_is_echoed_or_generated(client):
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) == 32
    r = await client.post("/predict/nope", json={"images": []}, headers={"X-Request-ID": "trace-9"})
    assert r.json()["error"]["request_id"] == "trace-9"


async def test_openapi_has_a_working_example_for_every_endpoint(client):
    spec = (await client.get("/openapi.json")).json()
    # One operation per model and version (each with its model's own body schema), no generic /predict/{model}.
    assert set(spec["paths"]) >= {"/predict/cnn", "/predict/rnn", "/predict/lstm", "/predict/cnn/versions/1",
                                  "/parity", "/health", "/ready", "/models", "/repository/index"}
    assert "/predict/{model}" not in spec["paths"]
    expected = {"cnn": {"base64_png", "nested_list", "inputs"}, "rnn": {"text", "token_ids"},
                "lstm": {"text", "token_ids"}}
    for arch, names in expected.items():
        for path in (f"/predict/{arch}", f"/predict/{arch}/versions/1"):
            examples = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
            assert set(examples) == names, path
            for name, example in examples.items():  # the documented request examples really work
                r = await client.post(path, json=example["value"])
                assert r.status_code == 200, (path, name, r.text)
                assert r.json()["model"] == arch and r.json()["version"] == 1
    parity_params = {p["name"]: p for p in spec["paths"]["/parity"]["get"]["parameters"]}
    assert parity_params["arch"]["examples"]["rnn"]["value"] == "rnn" and parity_params["limit"]["examples"]
    predict_params = {p["name"]: p for p in spec["paths"]["/predict/cnn"]["post"]["parameters"]}
    assert set(predict_params["backend"]["examples"]) == {"scratch", "keras"}
    schemas = spec["components"]["schemas"]
    for model in ("PredictResponse", "ParityResult", "HealthResponse", "ReadyResponse", "ModelsResponse", "ErrorResponse"):
        assert schemas[model].get("examples"), model
    assert (await client.get("/docs")).status_code == 200
