"""Teaches schemathesis the service's one custom string format, ``image-base64``: real PNG and JPEG files
(1-64 pixels a side, grey, RGB or RGBA, random pixels), base64-encoded, sometimes as a ``data:`` URL.

``schemathesis.toml`` at the repository root loads this file (``hooks``), so that a plain
``schemathesis run --checks all http://127.0.0.1:8000/openapi.json`` from there generates valid images;
tests/service/test_schemathesis.py imports it for the in-process run.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import schemathesis
from hypothesis import strategies as st


@st.composite
def image_base64(draw) -> str:
    from PIL import Image

    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG"])) if mode != "RGBA" else "PNG"
    seed = draw(st.integers(0, 2**32 - 1))
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(buf, format=fmt)
    text = base64.b64encode(buf.getvalue()).decode("ascii")
    return draw(st.sampled_from([text, f"data:image/{fmt.lower()};base64,{text}"]))


schemathesis.openapi.format("image-base64", image_base64())
