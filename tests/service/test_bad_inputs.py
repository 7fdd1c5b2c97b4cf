"""Every bad input is a 4xx JSON error naming the field, the item index and the reason -- never a 500."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest

from service_helpers import app_client, make_settings, png_base64
from service.app import create_app

pytestmark = pytest.mark.anyio

GOOD = np.full((32, 32, 3), 0.5).tolist()


def image_with(r: int, c: int, k: int, value):
    img = np.full((32, 32, 3), 0.5).tolist()
    img[r][c][k] = value
    return img


def png_header_only(width: int, height: int) -> str:
    """A PNG that declares ``width x height`` RGB pixels but holds a few bytes: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    return base64.b64encode(body).decode()


def gif_base64() -> str:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return base64.b64encode(buf.getvalue()).decode()


def truncated_png() -> str:
    raw = base64.b64decode(png_base64(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    return base64.b64encode(raw[: len(raw) // 2]).decode()


# (id, arch, query, json body, status, code, field, index)
CASES = [
    ("unknown model", "resnet", "", {"images": [GOOD]}, 404, "model_not_found", "model", None),
    ("unknown backend", "cnn", "?backend=torch", {"images": [GOOD]}, 422, "invalid_input", "backend", None),
    ("missing images", "cnn", "", {}, 422, "invalid_input", "images", None),
    ("texts sent to cnn", "cnn", "", {"texts": ["hello"]}, 422, "invalid_input", "texts", None),
    ("images sent to rnn", "rnn", "", {"images": [GOOD]}, 422, "invalid_input", "images", None),
    ("empty images", "cnn", "", {"images": []}, 422, "invalid_input", "images", None),
    ("images not a list", "cnn", "", {"images": "abc"}, 422, "invalid_input", "images", None),
    ("images null", "cnn", "", {"images": None}, 422, "invalid_input", "images", None),
    ("unknown field", "cnn", "", {"images": [GOOD], "extra": 1}, 422, "invalid_input", "extra", None),
    ("body is a list", "cnn", "", [GOOD], 422, "invalid_input", "body", None),
    ("item is a number", "cnn", "", {"images": [GOOD, 3]}, 422, "invalid_input", "images[1]", 1),
    ("item is an object", "cnn", "", {"images": [{"a": 1}]}, 422, "invalid_input", "images[0]", 0),
    ("item is null", "cnn", "", {"images": [GOOD, GOOD, None]}, 422, "invalid_input", "images[2]", 2),
    ("wrong shape 32x32", "cnn", "", {"images": [GOOD, np.zeros((32, 32)).tolist()]}, 422, "invalid_input", "images[1]", 1),
    ("wrong shape 28x28x3", "cnn", "", {"images": [np.zeros((28, 28, 3)).tolist()]}, 422, "invalid_input", "images[0]", 0),
    ("wrong shape 32x32x4", "cnn", "", {"images": [np.zeros((32, 32, 4)).tolist()]}, 422, "invalid_input", "images[0]", 0),
    ("ragged lists", "cnn", "", {"images": [GOOD[:31] + [GOOD[0][:5]]]}, 422, "invalid_input", "images[0]", 0),
    ("value above 1", "cnn", "", {"images": [GOOD, GOOD, GOOD, image_with(0, 5, 1, 1.7)]}, 422, "invalid_input", "images[3]", 3),
    ("negative value", "cnn", "", {"images": [image_with(31, 31, 2, -0.01)]}, 422, "invalid_input", "images[0]", 0),
    ("pixel values 0..255", "cnn", "", {"images": [np.full((32, 32, 3), 200).tolist()]}, 422, "invalid_input", "images[0]", 0),
    ("string inside image", "cnn", "", {"images": [image_with(1, 2, 0, "0.5")]}, 422, "invalid_input", "images[0]", 0),
    ("boolean inside image", "cnn", "", {"images": [image_with(1, 2, 0, True)]}, 422, "invalid_input", "images[0]", 0),
    ("null inside image", "cnn", "", {"images": [image_with(1, 2, 0, None)]}, 422, "invalid_input", "images[0]", 0),
    ("undecodable base64", "cnn", "", {"images": [GOOD, "not base64 at all!"]}, 422, "invalid_input", "images[1]", 1),
    ("empty string image", "cnn", "", {"images": [""]}, 422, "invalid_input", "images[0]", 0),
    ("base64 of text", "cnn", "", {"images": [base64.b64encode(b"hello, not an image").decode()]}, 422, "invalid_input", "images[0]", 0),
    ("GIF is not PNG/JPEG", "cnn", "", {"images": [gif_base64()]}, 422, "invalid_input", "images[0]", 0),
    ("truncated PNG", "cnn", "", {"images": [truncated_png()]}, 422, "invalid_input", "images[0]", 0),
    ("bomb over MAX_IMAGE_PIXELS", "cnn", "", {"images": [GOOD, png_header_only(5000, 5000)]}, 413, "image_too_large", "images[1]", 1),
    ("bomb over Pillow's own limit", "cnn", "", {"images": [png_header_only(60000, 60000)]}, 413, "image_too_large", "images[0]", 0),
    ("missing texts", "lstm", "", {}, 422, "invalid_input", "texts", None),
    ("empty texts", "rnn", "", {"texts": []}, 422, "invalid_input", "texts", None),
    ("empty text", "rnn", "", {"texts": ["ok then", ""]}, 422, "invalid_input", "texts[1]", 1),
    ("blank text", "lstm", "", {"texts": ["   \n\t "]}, 422, "invalid_input", "texts[0]", 0),
    ("punctuation-only text", "lstm", "", {"texts": ["fine", "good", "?!..."]}, 422, "invalid_input", "texts[2]", 2),
    ("number in texts", "rnn", "", {"texts": ["ok", 5]}, 422, "invalid_input", "texts[1]", 1),
    ("null in texts", "lstm", "", {"texts": [None]}, 422, "invalid_input", "texts[0]", 0),
    ("list in texts", "lstm", "", {"texts": ["a", "b", "c", ["d"]]}, 422, "invalid_input", "texts[3]", 3),
    ("texts is a string", "lstm", "", {"texts": "just one"}, 422, "invalid_input", "texts", None),
    ("batch over MAX_BATCH", "rnn", "", {"texts": ["kata"] * 257}, 413, "batch_too_large", "texts", None),
]


@pytest.mark.parametrize("name,arch,query,body,status,code,field,index", CASES, ids=[c[0] for c in CASES])
async def test_bad_input(client, name, arch, query, body, status, code, field, index):
    r = await client.post(f"/predict/{arch}{query}", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert (err["status"], err["code"], err["field"], err["index"]) == (status, code, field, index), err
    assert err["reason"] and err["message"] and err["request_id"]
    if index is not None:
        assert err["message"].startswith(f"{field}: ")


async def test_unknown_arch_lists_the_known_ones(client):
    err = (await client.post("/predict/resnet", json={"images": [GOOD]})).json()["error"]
    assert all(a in err["message"] for a in ("cnn", "rnn", "lstm"))


async def test_nan_and_infinity_are_refused(client):
    """Python's JSON parser accepts NaN and Infinity; the service does not."""
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = '{"images": [' + str(GOOD).replace("0.5", token, 1) + "]}"
        r = await client.post("/predict/cnn", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert (err["field"], err["index"]) == ("images[0]", 0) and "NaN" in err["reason"]


@pytest.mark.parametrize("raw", ['{"images": [', "{'images': []}", "images=1", '{"texts": ["a",]}', "\x00\x01",
                                 b'{"texts": ["\xff\xfe"]}'])
async def test_malformed_json(client, raw):
    r = await client.post("/predict/rnn", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert (err["code"], err["field"]) == ("malformed_json", "body") and "JSON" in err["reason"]


async def test_missing_body(client):
    r = await client.post("/predict/cnn", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


async def test_non_json_content_type(client):
    r = await client.post("/predict/cnn", content=b"images=1", headers={"content-type": "text/plain"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


@pytest.mark.parametrize("query,field", [("?limit=0", "limit"), ("?limit=abc", "limit"), ("?arch=vgg", "arch")])
async def test_bad_parity_query(client, query, field):
    r = await client.get(f"/parity{query}")
    assert r.status_code == 422 and r.json()["error"]["field"] == field


async def test_unknown_route_and_method(client):
    r = await client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/predict/cnn")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@pytest.fixture
async def small_body_client(weights_dir, registry):
    async with app_client(create_app(make_settings(weights_dir, max_body_bytes=4096), registry=registry)) as c:
        yield c


async def test_body_over_max_body_bytes(small_body_client):
    r = await small_body_client.post("/predict/rnn", json={"texts": ["kata " * 2000]})
    assert r.status_code == 413
    err = r.json()["error"]
    assert (err["code"], err["field"]) == ("payload_too_large", "body") and "MAX_BODY_BYTES=4096" in err["reason"]


async def test_body_limit_counts_bytes_not_content_length(small_body_client):
    """A chunked body (no Content-Length) is measured as it arrives."""
    async def chunks():
        yield b'{"texts": ["'
        for _ in range(100):
            yield b"kata " * 20
        yield b'"]}'
    r = await small_body_client.post("/predict/rnn", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_lying_content_length_is_caught(weights_dir, registry):
    """A Content-Length smaller than the body: the bytes received are what counts."""
    app = create_app(make_settings(weights_dir, max_body_bytes=4096), registry=registry)
    body = b'{"texts": ["' + b"kata " * 2000 + b'"]}'
    messages = [{"type": "http.request", "body": body[i:i + 1000], "more_body": i + 1000 < len(body)}
                for i in range(0, len(body), 1000)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async with app.router.lifespan_context(app):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/predict/rnn", "raw_path": b"/predict/rnn", "query_string": b"",
                 "root_path": "", "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
                 "client": ("127.0.0.1", 1), "server": ("test", 80), "app": app}
        await app(scope, receive, send)
    assert sent[0]["status"] == 413


@pytest.mark.parametrize("ready", [0.0, 1, "true", None])
async def test_repository_index_filter_is_a_json_boolean(weights_dir, registry, ready):
    """Found by the 10x property run: ``{"ready": 0.0}`` was read as false (pydantic's lax bool)."""
    app = create_app(make_settings(weights_dir, admin_token="tok"), registry=registry)
    async with app_client(app) as c:
        r = await c.post("/repository/index", json={"ready": ready}, headers={"Authorization": "Bearer tok"})
    if ready is None:
        assert r.status_code == 200 and {row["name"] for row in r.json()} == {"cnn", "rnn", "lstm"}
    else:
        assert r.status_code == 422 and r.json()["error"]["field"] == "ready", r.text
