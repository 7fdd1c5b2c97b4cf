"""TF Serving's REST API against a live uvicorn, checked against the JSON examples of its documentation
(tensorflow/serving ``g3doc/api_rest.md``, and the metadata example of its ``docs``): the same keys, nesting and
value types, and probabilities bit-identical to ``POST /predict`` for the same input and backend."""
from __future__ import annotations

import base64
import time

import httpx
import numpy as np
import pytest

from protocol_helpers import TEXTS, png_base64

# api_rest.md, "Make REST API calls to ModelServer": status of half_plus_three.
DOC_STATUS = {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                        "status": {"error_code": "OK", "error_message": ""}}]}
# api_rest.md: the 404 of an unknown model.
DOC_ERROR = {"error": "Servable not found for request: Latest(half)"}
# GET /v1/models/{name}/metadata of a Keras model in TF Serving (the signature_def of serving_default).
DOC_METADATA = {
    "model_spec": {"name": "half_plus_two", "signature_name": "", "version": "123"},
    "metadata": {"signature_def": {"signature_def": {"serving_default": {
        "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""},
                                                                       {"size": "1", "name": ""}],
                                                               "unknown_rank": False}, "name": "x:0"}},
        "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""},
                                                                        {"size": "1", "name": ""}],
                                                                "unknown_rank": False}, "name": "y:0"}},
        "method_name": "tensorflow/serving/predict"}}}}}


def same_form(ours, doc, path="$") -> None:
    """``ours`` has the documented form of ``doc``: the same keys (named-tensor maps aside), nesting and types."""
    if isinstance(doc, dict):
        assert isinstance(ours, dict), f"{path}: {type(ours).__name__}, documented an object"
        named = path.endswith((".inputs", ".outputs", ".signature_def.signature_def"))
        if named:  # a map from tensor (or signature) names: compare each entry with the documented one
            assert ours, f"{path}: empty"
            for key, value in ours.items():
                same_form(value, next(iter(doc.values())), f"{path}.{key}")
            return
        assert set(ours) == set(doc), f"{path}: keys {sorted(ours)}, documented {sorted(doc)}"
        for key in doc:
            same_form(ours[key], doc[key], f"{path}.{key}")
    elif isinstance(doc, list):
        assert isinstance(ours, list) and ours, f"{path}: documented a non-empty list"
        for i, item in enumerate(ours):
            same_form(item, doc[0], f"{path}[{i}]")
    else:
        assert type(ours) is type(doc), f"{path}: {type(ours).__name__}, documented {type(doc).__name__}"


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.base_url, timeout=60) as c:
        yield c


def reference(http, arch: str, backend: str, **body) -> np.ndarray:
    r = http.post(f"/predict/{arch}?backend={backend}", json=body)
    assert r.status_code == 200, r.text
    return np.array([p["probabilities"] for p in r.json()["predictions"]])


@pytest.mark.parametrize("arch", ["cnn", "rnn", "lstm"])
def test_status_and_metadata_have_the_documented_form(http, arch):
    for path in (f"/v1/models/{arch}", f"/v1/models/{arch}/versions/1"):
        r = http.get(path)
        assert r.status_code == 200
        same_form(r.json(), DOC_STATUS)
        assert r.json()["model_version_status"] == [{"version": "1", "state": "AVAILABLE",
                                                     "status": {"error_code": "OK", "error_message": ""}}]
    for path in (f"/v1/models/{arch}/metadata", f"/v1/models/{arch}/versions/1/metadata"):
        meta = http.get(path).json()
        same_form(meta, DOC_METADATA)
        assert meta["model_spec"] == {"name": arch, "signature_name": "", "version": "1"}
        sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
        (name, info), = sig["inputs"].items()
        dims = [d["size"] for d in info["tensor_shape"]["dim"]]
        if arch == "cnn":
            assert (name, info["dtype"], dims) == ("images", "DT_FLOAT", ["-1", "32", "32", "3"])
        else:
            assert (name, info["dtype"], dims) == ("texts", "DT_STRING", ["-1"])
        (out_name, out), = sig["outputs"].items()
        assert out_name == "probabilities" and out["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in out["tensor_shape"]["dim"]] == ["-1", "10" if arch == "cnn" else "3"]


def test_unknown_model_is_the_documented_404(http):
    r = http.post("/v1/models/half:predict", json={"instances": [1.0, 5.0]})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    same_form(r.json(), DOC_ERROR)
    assert "half" in r.json()["error"]


@pytest.mark.parametrize("backend", ["scratch", "keras"])
def test_predict_images_row_and_columnar(http, images, backend):
    ref = reference(http, "cnn", backend, images=images.tolist())
    # row format, one unnamed input ("instances": [tensor, tensor]) -> {"predictions": [...]}
    r = http.post(f"/v1/models/cnn:predict?backend={backend}", json={"instances": images.tolist()})
    assert r.status_code == 200 and set(r.json()) == {"predictions"}
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)
    # row format, named input (list of objects)
    r = http.post(f"/v1/models/cnn/versions/1:predict?backend={backend}",
                  json={"signature_name": "serving_default", "instances": [{"images": i} for i in images.tolist()]})
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)
    # columnar format, unnamed and named -> {"outputs": ...}
    for inputs in (images.tolist(), {"images": images.tolist()}):
        r = http.post(f"/v1/models/cnn:predict?backend={backend}", json={"inputs": inputs})
        assert r.status_code == 200 and set(r.json()) == {"outputs"}
        np.testing.assert_array_equal(np.array(r.json()["outputs"]), ref)


def test_predict_b64_image_files(http):
    """{"b64": ...} (api_rest.md, "Encoding binary values") decodes exactly as /predict's base64 images."""
    rng = np.random.default_rng(3)
    files = [png_base64(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)) for _ in range(2)]
    assert all(base64.b64decode(f)[:4] == b"\x89PNG" for f in files)
    ref = reference(http, "cnn", "keras", images=files)
    r = http.post("/v1/models/cnn:predict?backend=keras", json={"instances": [{"b64": f} for f in files]})
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)
    r = http.post("/v1/models/cnn:predict?backend=keras", json={"instances": [{"images": {"b64": f}} for f in files]})
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_predict_texts_and_token_ids(http, weights_dir, arch):
    import json

    from scratch_models.text import TextVectorizer

    ref = reference(http, arch, "scratch", texts=TEXTS)
    r = http.post(f"/v1/models/{arch}:predict", json={"instances": TEXTS})
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)
    r = http.post(f"/v1/models/{arch}:predict", json={"inputs": {"texts": TEXTS}})
    np.testing.assert_array_equal(np.array(r.json()["outputs"]), ref)
    vec = TextVectorizer(**json.loads((weights_dir / arch / "vectorizer.json").read_text()))
    ids = np.asarray(vec.transform(TEXTS)).tolist()
    r = http.post(f"/v1/models/{arch}:predict", json={"instances": ids})
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)
    r = http.post(f"/v1/models/{arch}:predict", json={"instances": [{"token_ids": i} for i in ids]})
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)


def test_metrics_and_logs_count_each_protocol(http, live_server, images):
    """The same request through the three doors is counted once each, by protocol, and logged with its id."""
    http.post("/predict/cnn", json={"images": images[:1].tolist()})
    http.post("/v1/models/cnn:predict", json={"instances": images[:1].tolist()}, headers={"X-Request-ID": "tf-log-1"})
    http.post("/v2/models/cnn/infer", json={"inputs": [{"name": "images", "shape": [1, 32, 32, 3],
                                                        "datatype": "FP32", "data": images[:1].ravel().tolist()}]},
              headers={"X-Request-ID": "v2-log-1"})
    text = http.get("/metrics").text
    for protocol in ("predict", "tfserving", "v2"):
        assert f'protocol="{protocol}"' in text
    deadline = time.monotonic() + 5  # the access log line is written as the response completes
    while True:
        lines = {rec.get("request_id"): rec for rec in live_server.log_lines() if rec.get("msg") == "request"}
        if {"tf-log-1", "v2-log-1"} <= set(lines) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines["tf-log-1"]["path"] == "/v1/models/cnn:predict" and lines["tf-log-1"]["status"] == 200
    assert lines["v2-log-1"]["path"] == "/v2/models/cnn/infer" and lines["v2-log-1"]["status"] == 200


def test_curl_d_as_in_the_documentation(http):
    """api_rest.md's own example is ``curl -d '{"instances": ...}'``: form-encoded by curl, read as JSON."""
    body = b'{"instances": ["Makanannya enak sekali.", "Pesanan datang terlambat."]}'
    r = http.post("/v1/models/rnn:predict", content=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    ref = reference(http, "rnn", "scratch", texts=["Makanannya enak sekali.", "Pesanan datang terlambat."])
    np.testing.assert_array_equal(np.array(r.json()["predictions"]), ref)
