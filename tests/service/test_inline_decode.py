"""Small requests are decoded on the event loop, bigger ones in the thread pool, with the same result.

A thread hand-over costs the event loop more than decoding a few 32x32 images (see ``service.inputs``);
``inline=True`` must refuse (``Deferred``) anything bigger before doing its expensive part."""
from __future__ import annotations

import numpy as np
import pytest

from service import inputs
from service.routes import predict as predict_route
from service_helpers import png_base64

RNG = np.random.default_rng(7)


def pngs(n: int, size: int = 32) -> list[str]:
    return [png_base64(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def test_inline_decode_equals_the_pool_decode():
    items = pngs(inputs.INLINE_MAX_ITEMS - 1) + [np.full((32, 32, 3), 0.25).tolist()]
    inline = inputs.decode_images(items, 1 << 24, inline=True)
    np.testing.assert_array_equal(inline, inputs.decode_images(items, 1 << 24))
    assert inline.shape == (inputs.INLINE_MAX_ITEMS, 32, 32, 3)


@pytest.mark.parametrize("items, field", [
    (pngs(inputs.INLINE_MAX_ITEMS + 1), "images"),
    (pngs(1, size=65), "images"),  # 65x65 > INLINE_MAX_PIXELS = 64x64
    (["kata"] * (inputs.INLINE_MAX_ITEMS + 1), "texts"),
    (["kata " * (inputs.INLINE_MAX_TEXT_CHARS // 5 + 1)], "texts"),
])
def test_inline_refuses_more_than_a_small_request(items, field):
    with pytest.raises(inputs.Deferred):
        if field == "images":
            inputs.decode_images(items, 1 << 24, inline=True)
        else:
            inputs.inline_size_ok(items, field)
    if field == "images":  # the pool path decodes them
        assert len(inputs.decode_images(items, 1 << 24)) == len(items)


def test_inline_checks_the_pixel_limit_before_deferring():
    """A decompression bomb is refused (413) on the loop from its header, not handed to the pool."""
    from test_bad_inputs import png_header_only
    with pytest.raises(inputs.PayloadTooLarge):
        inputs.decode_images([png_header_only(50_000, 50_000)], 1 << 24, inline=True)


@pytest.mark.anyio
@pytest.mark.parametrize("arch, items, hops", [
    ("cnn", {"images": pngs(2)}, 0),
    ("cnn", {"images": pngs(inputs.INLINE_MAX_ITEMS + 1)}, 1),
    ("cnn", {"images": pngs(1, size=100)}, 1),
    ("rnn", {"texts": ["filmnya bagus sekali"]}, 0),
    ("lstm", {"texts": ["bagus"] * (inputs.INLINE_MAX_ITEMS + 1)}, 1),
])
async def test_the_route_hands_only_big_requests_to_the_pool(client, monkeypatch, arch, items, hops):
    calls = []
    original = predict_route.run_in_threadpool

    async def counting(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(predict_route, "run_in_threadpool", counting)
    r = await client.post(f"/predict/{arch}", json=items)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == len(next(iter(items.values())))
    assert calls == ["network_input"] * hops
