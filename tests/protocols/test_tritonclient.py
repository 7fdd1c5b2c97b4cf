"""The Open Inference Protocol v2 against a live uvicorn, driven by NVIDIA's ``tritonclient[http]`` -- a client
nobody here wrote, which sends inputs as Triton binary tensor data by default and asks for binary outputs when
no outputs are named. Probabilities must be bit-identical to ``POST /predict`` for the same input and backend.
"""
from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from protocol_helpers import TEXTS, png_base64

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
from tritonclient.utils import InferenceServerException  # noqa: E402

BACKENDS = ("scratch", "keras")


@pytest.fixture(scope="module")
def triton(live_server):
    url = live_server.base_url.removeprefix("http://")
    client = httpclient.InferenceServerClient(url=url, connection_timeout=30, network_timeout=60)
    yield client
    client.close()


def predict(live_server, arch: str, backend: str, **body) -> tuple[np.ndarray, list[str]]:
    """Probabilities and labels from the service's own /predict (the reference)."""
    r = httpx.post(f"{live_server.base_url}/predict/{arch}?backend={backend}", json=body, timeout=60)
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    return np.array([p["probabilities"] for p in preds], dtype=np.float64), [p["label"] for p in preds]


def strings(arr: np.ndarray) -> list[str]:
    """A BYTES output as tritonclient returns it: bytes from binary data, str from JSON data."""
    return [v.decode() if isinstance(v, bytes) else v for v in arr]


def image_input(images: np.ndarray, binary: bool):
    inp = httpclient.InferInput("images", list(images.shape), "FP32")
    inp.set_data_from_numpy(images, binary_data=binary)
    return inp


def text_input(texts: list[str], binary: bool):
    arr = np.array([t.encode() for t in texts], dtype=np.object_)
    inp = httpclient.InferInput("texts", [len(texts)], "BYTES")
    inp.set_data_from_numpy(arr, binary_data=binary)
    return inp


def test_health_and_server_metadata(triton):
    assert triton.is_server_live() is True
    assert triton.is_server_ready() is True
    meta = triton.get_server_metadata()
    assert meta["name"] == "scratch-serve" and meta["version"] and "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("arch", ["cnn", "rnn", "lstm"])
def test_model_ready_and_metadata(triton, arch):
    assert triton.is_model_ready(arch) is True
    assert triton.is_model_ready(arch, model_version="1") is True
    meta = triton.get_model_metadata(arch)
    assert meta["name"] == arch and meta["versions"] == ["1"] and meta["platform"] == "keras"
    (inp,) = meta["inputs"]
    if arch == "cnn":
        assert inp == {"name": "images", "datatype": "FP32", "shape": [-1, 32, 32, 3]}
        classes = 10
    else:
        assert inp == {"name": "texts", "datatype": "BYTES", "shape": [-1]}
        classes = 3
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
                               {"name": "labels", "datatype": "BYTES", "shape": [-1]}]
    assert triton.get_model_metadata(arch, model_version="1") == meta


def test_unknown_model_or_version_is_not_ready(triton):
    assert triton.is_model_ready("nope") is False
    assert triton.is_model_ready("cnn", model_version="7") is False
    with pytest.raises(InferenceServerException) as err:
        triton.get_model_metadata("nope")
    assert err.value.status() == "404" and "nope" in err.value.message()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_images_default_outputs(triton, live_server, images, backend, binary):
    """No outputs named: tritonclient asks for every output as binary data (binary_data_output)."""
    result = triton.infer("cnn", [image_input(images, binary)], parameters={"backend": backend}, request_id="img-1")
    probs, labels = result.as_numpy("probabilities"), result.as_numpy("labels")
    assert probs.dtype == np.float32 and probs.shape == (3, 10)
    ref_probs, ref_labels = predict(live_server, "cnn", backend, images=images.tolist())
    np.testing.assert_array_equal(probs.astype(np.float64), ref_probs)  # bit-identical
    assert strings(labels) == ref_labels
    response = result.get_response()
    assert response["model_name"] == "cnn" and response["model_version"] == "1" and response["id"] == "img-1"
    assert response["parameters"]["backend"] == backend
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_infer_requested_outputs(triton, live_server, images, binary_out):
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)]
    result = triton.infer("cnn", [image_input(images[:1], binary=False)], outputs=outputs, model_version="1")
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["probabilities"]
    assert ("data" in response["outputs"][0]) is not binary_out
    assert result.as_numpy("labels") is None
    ref, _ = predict(live_server, "cnn", "scratch", images=images[:1].tolist())
    np.testing.assert_array_equal(result.as_numpy("probabilities").astype(np.float64), ref)


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_texts(triton, live_server, arch, backend, binary):
    outputs = [httpclient.InferRequestedOutput("labels", binary_data=binary),
               httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
    result = triton.infer(arch, [text_input(TEXTS, binary)], outputs=outputs, parameters={"backend": backend})
    ref_probs, ref_labels = predict(live_server, arch, backend, texts=TEXTS)
    np.testing.assert_array_equal(result.as_numpy("probabilities").astype(np.float64), ref_probs)
    assert strings(result.as_numpy("labels")) == ref_labels


def test_infer_token_ids_equal_texts(triton, weights_dir):
    """The model's own vectorizer's ids (vectorizer.json), sent as INT64 token_ids, give what the texts give."""
    import json

    from scratch_models.text import TextVectorizer

    vec = TextVectorizer(**json.loads((weights_dir / "rnn" / "vectorizer.json").read_text()))
    ids = np.asarray(vec.transform(TEXTS), dtype=np.int64)
    inp = httpclient.InferInput("token_ids", list(ids.shape), "INT64")
    inp.set_data_from_numpy(ids)
    from_ids = triton.infer("rnn", [inp]).as_numpy("probabilities")
    from_texts = triton.infer("rnn", [text_input(TEXTS, True)]).as_numpy("probabilities")
    np.testing.assert_array_equal(from_ids, from_texts)


def test_infer_image_files_as_bytes(triton, live_server):
    """Encoded PNGs as BYTES (raw file bytes in binary data) decode exactly as /predict's base64 images."""
    rng = np.random.default_rng(5)
    pngs = [base64.b64decode(png_base64(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))) for _ in range(2)]
    inp = httpclient.InferInput("images", [2], "BYTES")
    inp.set_data_from_numpy(np.array(pngs, dtype=np.object_))
    probs = triton.infer("cnn", [inp], parameters={"backend": "keras"}).as_numpy("probabilities")
    ref, _ = predict(live_server, "cnn", "keras", images=[base64.b64encode(p).decode() for p in pngs])
    np.testing.assert_array_equal(probs.astype(np.float64), ref)


def test_infer_errors_reach_the_client(triton, images):
    """Bad requests come back as InferenceServerException carrying the server's status and message."""
    cases = []
    with pytest.raises(InferenceServerException) as err:
        triton.infer("nope", [image_input(images, True)])
    cases.append(err.value)
    with pytest.raises(InferenceServerException) as err:
        triton.infer("cnn", [image_input(images, True)], model_version="3")
    cases.append(err.value)
    with pytest.raises(InferenceServerException) as err:
        triton.infer("cnn", [text_input(TEXTS, True)])
    cases.append(err.value)
    with pytest.raises(InferenceServerException) as err:
        triton.infer("cnn", [image_input(images * 2, True)])
    cases.append(err.value)
    with pytest.raises(InferenceServerException) as err:
        triton.infer("cnn", [image_input(images, True)], parameters={"backend": "torch"})
    cases.append(err.value)
    assert [e.status() for e in cases] == ["404", "404", "400", "400", "400"]
    assert "nope" in cases[0].message() and "version" in cases[1].message()
    assert "texts" in cases[2].message() and "[0, 1]" in cases[3].message() and "torch" in cases[4].message()


def test_the_readme_example_runs(live_server, capsys):
    """README's five-line tritonclient example, pointed at the live server, prints one CIFAR-10 label."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Open Inference Protocol v2"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    exec(compile(code.replace("localhost:8000", live_server.base_url.removeprefix("http://")), "README", "exec"), {})
    printed = capsys.readouterr().out
    assert re.fullmatch(r"\[b'[a-z]+'\]\n", printed), printed
