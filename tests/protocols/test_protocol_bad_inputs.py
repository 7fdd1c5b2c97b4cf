"""Bad requests through both protocols: each a 4xx in the protocol's error shape, ``{"error": "<message>"}`` and
nothing else, the message naming what was wrong (the tensor, field or item) -- never a 500, never a silent
reshape (triton#7171) or a silent coercion."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from protocol_helpers import png_base64

pytestmark = pytest.mark.anyio

IMG = [[[0.5, 0.25, 0.75]] * 32] * 32
FLAT = [0.5] * 3072


def v2_image(**over) -> dict:
    tensor = {"name": "images", "shape": [1, 32, 32, 3], "datatype": "FP32", "data": FLAT, **over}
    return {"inputs": [tensor]}


def v2_text(data, shape=None, **over) -> dict:
    return {"inputs": [{"name": "texts", "shape": shape or [len(data)], "datatype": "BYTES", "data": data, **over}]}


V2_CASES = {
    # shape vs data: a size mismatch names the input, never a silent reshape
    "flat data shorter than shape": ("cnn", v2_image(data=[0.5] * 3000), 400, "holds 3072 elements, data holds 3000"),
    "nested data of another shape": ("cnn", v2_image(shape=[1, 32, 96, 1], data=[IMG]), 400, "nested as [1, 32, 32, 3]"),
    "shape of another image size": ("cnn", v2_image(shape=[1, 16, 64, 3]), 400, "this model takes [N, 32, 32, 3]"),
    "ragged nested data": ("cnn", v2_image(data=[[[0.5] * 3] * 32] * 31 + [[[0.5] * 3] * 31]), 400, "ragged"),
    "batch dimension 0": ("cnn", v2_image(shape=[0, 32, 32, 3], data=[]), 400, "batch dimension is 0"),
    "over MAX_BATCH": ("cnn", v2_image(shape=[17, 32, 32, 3], data=[0.5] * 3072 * 17), 413, "MAX_BATCH=16"),
    "negative shape": ("cnn", v2_image(shape=[-1, 32, 32, 3]), 400, "inputs[0].shape[0]"),
    # datatypes
    "unknown datatype": ("cnn", v2_image(datatype="FP8"), 400, "unknown datatype 'FP8'"),
    "datatype the input does not take": ("cnn", v2_image(datatype="INT32", data=[0] * 3072), 400,
                                         "takes datatype FP32 or FP64 or BYTES, not INT32"),
    "strings in FP32 data": ("cnn", v2_image(data=["0.5"] * 3072), 400, "FP32 data must be numbers, found a string"),
    "booleans in FP32 data": ("cnn", v2_image(data=[True] + [0.5] * 3071), 400, "found a boolean"),
    "value outside [0, 1]": ("cnn", v2_image(data=[0.5] * 3071 + [1.5]), 400, "values must be in [0, 1]"),
    "NaN": ("cnn", v2_image(data=[float("nan")] + [0.5] * 3071), 400, "NaN and infinities are not allowed"),
    "non-string BYTES": ("rnn", v2_text([3]), 400, "BYTES data must be strings"),
    "empty text": ("rnn", v2_text(["enak", "   "]), 400, "texts[1]"),
    "BYTES of shape [N, 2]": ("rnn", v2_text(["a", "b"], shape=[1, 2]), 400, "BYTES inputs are [N]"),
    "token id outside the vocabulary": ("rnn", {"inputs": [{"name": "token_ids", "shape": [1, 12], "datatype": "INT64",
                                                            "data": [99999] + [0] * 11}]}, 400, "ids must be in [0, "),
    "all-padding token ids": ("rnn", {"inputs": [{"name": "token_ids", "shape": [1, 12], "datatype": "INT32",
                                                  "data": [0] * 12}]}, 400, "every token id is 0"),
    "INT32 value out of range": ("rnn", {"inputs": [{"name": "token_ids", "shape": [1, 12], "datatype": "INT32",
                                                     "data": [2**40] + [0] * 11}]}, 400, "out of range for INT32"),
    "floats as token ids": ("rnn", {"inputs": [{"name": "token_ids", "shape": [1, 12], "datatype": "INT64",
                                                "data": [1.5] + [0] * 11}]}, 400, "INT64 data must be integers"),
    "corrupt image file": ("cnn", {"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES",
                                               "data": ["bm90IGFuIGltYWdl"]}]}, 400, "images[0]"),
    # names: inputs, outputs, models, versions, backends
    "unknown input name": ("cnn", {"inputs": [{"name": "pixels", "shape": [1, 32, 32, 3], "datatype": "FP32",
                                               "data": FLAT}]}, 400, "takes an input named 'images', not 'pixels'"),
    "texts to the image model": ("cnn", v2_text(["enak"]), 400, "not 'texts'"),
    "two inputs": ("cnn", {"inputs": v2_image()["inputs"] * 2}, 400, "inputs"),
    "no inputs": ("cnn", {"inputs": []}, 400, "inputs"),
    "unknown output": ("cnn", {**v2_image(), "outputs": [{"name": "logits"}]}, 400, "unknown output 'logits'"),
    "classification extension": ("cnn", {**v2_image(), "outputs": [{"name": "labels",
                                                                   "parameters": {"classification": 3}}]},
                                 400, "classification extension is not supported"),
    "binary_data as a string": ("cnn", {**v2_image(), "outputs": [{"name": "labels",
                                                                  "parameters": {"binary_data": "false"}}]},
                                400, "outputs[0].parameters.binary_data: must be true or false"),
    "unknown backend": ("cnn", {**v2_image(), "parameters": {"backend": "torch"}}, 400, "unknown backend 'torch'"),
    "both data and binary_data_size": ("cnn", v2_image(parameters={"binary_data_size": 12288}), 400,
                                       "both `data` and `parameters.binary_data_size`"),
    "no data": ("cnn", v2_image(data=None), 400, "no data"),
    "unknown model": ("nope", v2_image(), 404, "unknown model 'nope'"),
    "unknown version": ("cnn/versions/7", v2_image(), 404, "no version '7'"),
}


def assert_protocol_error(r, status: int, fragment: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert fragment in body["error"], body["error"]


@pytest.mark.parametrize("case", V2_CASES, ids=list(V2_CASES))
async def test_v2_bad_json_requests(client, case):
    model, body, status, fragment = V2_CASES[case]
    r = await client.post(f"/v2/models/{model}/infer", content=json.dumps(body),  # NaN as JSON's NaN token
                          headers={"Content-Type": "application/json"})
    assert_protocol_error(r, status, fragment)


def binary_request(header: dict, data: bytes, header_length: str | None = "auto") -> tuple[bytes, dict]:
    text = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream"}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = str(len(text)) if header_length == "auto" else header_length
    return text + data, headers


IMAGE_BYTES = np.full((1, 32, 32, 3), 0.5, np.float32).tobytes()
BINARY_CASES = {
    "binary_data_size short of the shape": (
        v2_image(data=None, parameters={"binary_data_size": 12284}), IMAGE_BYTES[:-4], "auto", "needs 12288"),
    "bytes after the JSON beyond the sizes": (
        v2_image(data=None, parameters={"binary_data_size": 12288}), IMAGE_BYTES + b"xx", "auto",
        "12290 bytes of binary data follow the JSON"),
    "binary data without the header": (
        v2_image(data=None, parameters={"binary_data_size": 12288}), IMAGE_BYTES, None, "malformed JSON"),
    "header longer than the body": (
        v2_image(data=None, parameters={"binary_data_size": 12288}), IMAGE_BYTES, "999999",
        "Inference-Header-Content-Length"),
    "header not a number": (v2_image(), b"", "abc", "Inference-Header-Content-Length"),
    "BYTES element cut short": (
        {"inputs": [{"name": "texts", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]},
        struct.pack("<I", 10) + b"enak", "auto", "declares 10 bytes, 4 remain"),
    "BYTES count differs from the shape": (
        {"inputs": [{"name": "texts", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]},
        struct.pack("<I", 4) + b"enak", "auto", "holds 1 elements; the shape holds 2"),
    "BYTES not UTF-8": (
        {"inputs": [{"name": "texts", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
        struct.pack("<I", 2) + b"\xff\xfe", "auto", "not UTF-8 text"),
}


@pytest.mark.parametrize("case", BINARY_CASES, ids=list(BINARY_CASES))
async def test_v2_bad_binary_requests(client, case):
    header, data, length, fragment = BINARY_CASES[case]
    model = "rnn" if header["inputs"][0]["name"] == "texts" else "cnn"
    content, headers = binary_request(header, data, length)
    r = await client.post(f"/v2/models/{model}/infer", content=content, headers=headers)
    assert_protocol_error(r, 400, fragment)


async def test_v2_malformed_json_and_unknown_routes(client):
    assert_protocol_error(await client.post("/v2/models/cnn/infer", content=b'{"inputs": [',
                                            headers={"Content-Type": "application/json"}), 400, "malformed JSON")
    assert_protocol_error(await client.post("/v2/models/cnn/infer", content=b"[1, 2]"), 400, "a JSON object")
    assert_protocol_error(await client.get("/v2/models/nope"), 404, "unknown model 'nope'")
    assert_protocol_error(await client.get("/v2/models/cnn/versions/7/ready"), 404, "no version '7'")
    assert_protocol_error(await client.get("/v2/no/such/route"), 404, "no route")


TF_CASES = {
    "both instances and inputs": ("cnn", {"instances": [IMG], "inputs": [IMG]}, 400, "not both"),
    "neither instances nor inputs": ("cnn", {"signature_name": "serving_default"}, 400, "missing 'instances'"),
    "ragged instances": ("cnn", {"instances": [IMG, IMG[:31]]}, 400,
                         "instances[1]: shape [31, 32, 3] differs from instances[0]'s [32, 32, 3]"),
    "ragged inside an instance": ("cnn", {"instances": [IMG[:31] + [IMG[0][:31]]]}, 400, "instances[0]: ragged"),
    "ragged token ids": ("rnn", {"instances": [[1] * 12, [1] * 11]}, 400, "differs from instances[0]'s [12]"),
    "instance of the wrong shape": ("cnn", {"instances": [[[[0.5] * 3] * 16] * 16]}, 400, "instances[0]: expected shape"),
    "value outside [0, 1]": ("cnn", {"inputs": [[[[2.0] * 3] * 32] * 32]}, 400, "inputs[0]: value at"),
    "raw string image": ("cnn", {"instances": ["aGVsbG8="]}, 400, "instances[0]: an image is"),
    "corrupt b64 image": ("cnn", {"instances": [{"b64": "bm90IGFuIGltYWdl"}]}, 400, "instances[0]"),
    "b64 that is not base64": ("cnn", {"instances": [{"b64": "%%%"}]}, 400, "not valid base64"),
    "number as text": ("rnn", {"instances": ["enak", 5]}, 400, "instances[1]: a text instance is a string"),
    "empty text": ("rnn", {"inputs": {"texts": ["enak", ""]}}, 400, "inputs.texts[1]"),
    "unknown input name": ("rnn", {"inputs": {"sentences": ["enak"]}}, 400, "this model takes one input"),
    "mixed instance names": ("rnn", {"instances": [{"texts": "a"}, {"token_ids": [1] * 12}]}, 400,
                             "every instance must name the same one input"),
    "empty instances": ("cnn", {"instances": []}, 400, "non-empty list"),
    "over MAX_BATCH": ("rnn", {"instances": ["enak"] * 17}, 413, "MAX_BATCH=16"),
    "unknown signature": ("cnn", {"signature_name": "classify", "instances": [IMG]}, 400, "unknown signature"),
    "unknown model": ("nope", {"instances": [IMG]}, 404, "unknown model 'nope'"),
    "unknown version": ("cnn/versions/7", {"instances": [IMG]}, 404, "no version '7'"),
}


@pytest.mark.parametrize("case", TF_CASES, ids=list(TF_CASES))
async def test_tfserving_bad_requests(client, case):
    model, body, status, fragment = TF_CASES[case]
    r = await client.post(f"/v1/models/{model}:predict", json=body)
    assert_protocol_error(r, status, fragment)


async def test_tfserving_malformed_json_unknown_backend_and_status(client):
    assert_protocol_error(await client.post("/v1/models/cnn:predict", content=b'{"instances": [',
                                            headers={"Content-Type": "application/json"}), 400, "malformed JSON")
    assert_protocol_error(await client.post("/v1/models/cnn:predict?backend=torch", json={"instances": [IMG]}),
                          400, "backend")
    assert_protocol_error(await client.get("/v1/models/nope"), 404, "unknown model 'nope'")
    assert_protocol_error(await client.get("/v1/models/cnn/versions/7/metadata"), 404, "no version '7'")


async def test_valid_neighbours_of_the_bad_cases_pass(client, images):
    """The same requests, corrected, are answered 200 (the refusals above are about what they name)."""
    assert (await client.post("/v2/models/cnn/infer", json=v2_image())).status_code == 200
    assert (await client.post("/v2/models/cnn/infer", json=v2_image(data=[IMG]))).status_code == 200
    content, headers = binary_request(v2_image(data=None, parameters={"binary_data_size": 12288}), IMAGE_BYTES)
    assert (await client.post("/v2/models/cnn/infer", content=content, headers=headers)).status_code == 200
    assert (await client.post("/v1/models/cnn:predict", json={"instances": [IMG, IMG]})).status_code == 200
    assert (await client.post("/v1/models/cnn:predict",
                              json={"instances": [{"b64": png_base64((images[0] * 255).astype(np.uint8))}]})
            ).status_code == 200


async def test_a_version_without_the_default_backend_needs_one_named(weights_dir):
    """As /predict: when the default backend (scratch) did not load for a model but keras did, a request naming
    no backend is a 400 naming the field, one naming keras is served, and the model counts as ready."""
    from protocol_helpers import app_client, create_app, make_settings

    from service.registry import ModelRegistry

    keras_only = ModelRegistry(weights_dir, backends=("keras",)).load_all()
    async with app_client(create_app(make_settings(weights_dir, backends="keras"), registry=keras_only)) as c:
        assert (await c.get("/v2/models/cnn/ready")).status_code == 200
        assert_protocol_error(await c.post("/v2/models/cnn/infer", json=v2_image()), 400,
                              "parameters.backend: the default backend 'scratch' is unavailable")
        r = await c.post("/v2/models/cnn/infer", json={**v2_image(), "parameters": {"backend": "keras"}})
        assert r.status_code == 200 and r.json()["parameters"]["backend"] == "keras"
        assert_protocol_error(await c.post("/v1/models/cnn:predict", json={"instances": [IMG]}), 400,
                              "backend: the default backend 'scratch' is unavailable")
        assert (await c.post("/v1/models/cnn:predict?backend=keras", json={"instances": [IMG]})).status_code == 200
