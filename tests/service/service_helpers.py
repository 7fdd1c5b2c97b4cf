"""Plain helpers of the service tests (fixtures live in conftest.py): settings, an in-process client, PNGs.

Imported by name (``from service_helpers import ...``): a module name of its own, unlike ``conftest``,
which several test folders have.
"""
from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path

import httpx
import numpy as np

from service.settings import Settings


def make_settings(weights_dir: Path, **overrides) -> Settings:
    values = {"weights_dir": weights_dir, "data_dir": None, "log_level": "WARNING", **overrides}
    return Settings(**values)


@contextlib.asynccontextmanager
async def app_client(app):
    """An httpx client on the app in process, with the app's lifespan running."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test",
                                     timeout=60) as client:
            yield client


def png_base64(pixels: np.ndarray, fmt: str = "PNG", mode: str = "RGB", **save_kw) -> str:
    """uint8 (H, W, 3) -> base64 of a PNG/JPEG file (optionally converted to ``mode`` first)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").convert(mode).save(buf, format=fmt, **save_kw)
    return base64.b64encode(buf.getvalue()).decode()
