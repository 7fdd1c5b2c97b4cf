"""/predict's lean path (service/jsonbody.py, service/routes/predict.py, the nested-list fast path in
service/inputs.py) answers exactly what the pydantic/FastAPI path did: the same arrays as numpy's own
conversion of the nested lists, an answer valid against the documented ``PredictResponse`` with the
backend's own probabilities, and a 4xx naming the field, item and real reason for every body it refuses
(too deep is "nested too deeply", on every route, never "not UTF-8" and never a 500)."""
from __future__ import annotations

import numpy as np
import pytest

from service.inputs import DEFAULT_IMAGE, _from_nested_list, _plain_numbers
from service.schemas import PredictResponse

pytestmark = pytest.mark.anyio
SHAPE = (32, 32, 3)
JSON = {"content-type": "application/json"}


def image(seed: int = 0) -> list:
    return np.random.default_rng(seed).random(SHAPE).round(4).tolist()


def with_leaf(value, at=(3, 4, 1), seed: int = 0) -> list:
    img = image(seed)
    img[at[0]][at[1]][at[2]] = value
    return img


@pytest.mark.parametrize("item", [image(0), np.zeros(SHAPE, dtype=int).tolist(), with_leaf(1), with_leaf(0),
                                  with_leaf(2 ** 70)], ids=["floats", "ints", "int 1", "int 0", "big int"])
def test_fast_path_equals_numpys_conversion(item):
    fast = _plain_numbers(item, SHAPE)
    assert fast is not None and fast.dtype == np.float64
    np.testing.assert_array_equal(fast, np.asarray(item, dtype=np.float64))


@pytest.mark.parametrize("item", [with_leaf(True), with_leaf(False), with_leaf("0.5"), with_leaf(None),
                                  with_leaf([0.5]), with_leaf({"a": 1}), image()[:31], image()[:-1] + [image()[0][:31]],
                                  [[["abc"] * 32] * 32], [["x" * 3] * 32] * 32, with_leaf(10 ** 400)],
                         ids=["true", "false", "string", "null", "list leaf", "object", "31 rows", "ragged row",
                              "string pixels", "string rows", "int beyond float64"])
def test_fast_path_leaves_every_odd_item_to_the_checked_path(item):
    """Booleans (which numpy reads as 1.0/0.0), strings (which numpy would parse), wrong lengths at any level:
    the fast path declines, and the full check names the item."""
    assert _plain_numbers(item, SHAPE) is None
    with pytest.raises(Exception) as exc:
        _from_nested_list(item, 5, "images", DEFAULT_IMAGE, (0.0, 1.0))
    assert exc.value.status == 422 and exc.value.field == "images[5]" and exc.value.index == 5


async def test_answer_is_the_documented_schema_with_the_backends_probabilities(client, registry):
    images = [image(1), image(2)]
    r = await client.post("/predict/cnn?backend=scratch", json={"images": images})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = PredictResponse.model_validate(r.json())
    backend = registry.backend("cnn", "scratch")
    expected = backend.predict_proba(np.asarray(images, dtype=np.float32))
    got = np.array([p.probabilities for p in body.predictions])
    np.testing.assert_array_equal(got, expected.astype(np.float64))  # exact: float32 -> float -> JSON -> float
    assert [p.class_id for p in body.predictions] == expected.argmax(axis=1).tolist()
    assert [p.label for p in body.predictions] == [body.classes[i] for i in expected.argmax(axis=1)]
    assert (body.model, body.version, body.backend.value) == ("cnn", 1, "scratch")
    assert r.headers["x-batch-size"] == "2" and r.headers["x-model-version"] == "1"


@pytest.mark.parametrize("depth", [1000, 1100, 100_000])
@pytest.mark.parametrize("path,key,status", [("/predict/cnn", "images", 422), ("/v2/models/cnn/infer", "inputs", 400),
                                             ("/v1/models/cnn:predict", "instances", 400)])
async def test_deeply_nested_json_is_refused_for_being_too_deep(client, path, key, status, depth):
    body = b'{"%s": ' % key.encode() + b"[" * depth + b"0.5" + b"]" * depth + b"}"
    r = await client.post(path, content=body, headers=JSON)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    message = error if isinstance(error, str) else error["reason"]
    assert "UTF-8" not in message
    if path == "/predict/cnn" and depth == 1000:  # parsed (under orjson's 1,024 levels): the item is too deep
        assert error["field"] == "images[0]" and "nested deeper than 3 levels" in message
    else:
        assert "nested too deeply" in message, message
        if path == "/predict/cnn":
            assert (error["code"], error["field"]) == ("malformed_json", "body")


async def test_not_utf8_is_named_as_such(client):
    r = await client.post("/predict/rnn", content=b'{"texts": ["\xff\xfe"]}', headers=JSON)
    assert r.status_code == 422 and "not UTF-8" in r.json()["error"]["reason"]


async def test_content_type_is_checked_as_fastapi_did(client):
    good = b'{"texts": ["makanannya enak"]}'
    assert (await client.post("/predict/rnn", content=good, headers={"content-type": "application/json; charset=utf-8"})).status_code == 200
    assert (await client.post("/predict/rnn", content=good, headers={"content-type": "application/vnd.api+json"})).status_code == 200
    r = await client.post("/predict/rnn", content=good, headers={"content-type": "text/plain"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body" and "text/plain" in r.json()["error"]["reason"]


@pytest.mark.parametrize("url,field", [("/predict/rnn/versions/0", "version"), ("/predict/rnn/versions/abc", "version"),
                                       ("/predict/rnn?backend=torch", "backend"),
                                       ("/predict/rnn/versions/1?backend=", "backend")])
async def test_path_and_query_errors_name_their_parameter(client, url, field):
    r = await client.post(url, json={"texts": ["makanannya enak"]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


async def test_nan_from_the_slow_json_path_is_named(client):
    """orjson refuses NaN; Python's parser takes it, and the item check names the value and where."""
    raw = '{"images": [' + str(with_leaf(0.123456789)).replace("0.123456789", "NaN") + "]}"
    r = await client.post("/predict/cnn", content=raw, headers=JSON)
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == "images[0]" and "NaN" in error["reason"]
    assert "[3][4][1]" in error["reason"]
