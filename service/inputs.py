"""Request items -> the network's input, with a precise error for every bad item.

Images: each item is either a 32x32x3 nested list of numbers in [0, 1] (the network's input as is) or a
base64 string (optionally a ``data:image/...;base64,`` URL) of a PNG or JPEG file of any size, which is
converted to RGB (alpha dropped), resized to 32x32 (Pillow bilinear, antialiased) and scaled by 1/255.
Texts: non-empty strings; turning them into token ids is the vectorizer's job (the backend's ``encode``).
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

import numpy as np

from .errors import InvalidInput, PayloadTooLarge, item_error

IMAGE_SHAPE = (32, 32, 3)
IMAGE_FORMATS = ("PNG", "JPEG")
#: A request at most this big is decoded on the event loop: for a few small images or texts, a hand-over
#: to the thread pool costs the loop more than the work (cnn/scratch, concurrency 32: ~0.3 ms of loop time
#: per request against ~0.1 ms to decode one 32x32 PNG). Anything bigger goes to the pool (`Deferred`).
INLINE_MAX_ITEMS = 8
INLINE_MAX_PIXELS = 64 * 64
INLINE_MAX_TEXT_CHARS = 16 * 1024
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)


class Deferred(Exception):
    """Raised by an ``inline=True`` decode that met more work than the event loop should do: run it again
    in the thread pool. Raised before any expensive step (the image header is read, not its pixels)."""


def inline_size_ok(items: list, field: str) -> None:
    """Raise :class:`Deferred` unless ``items`` is small enough to decode on the event loop."""
    if len(items) > INLINE_MAX_ITEMS:
        raise Deferred(f"{len(items)} {field}")
    if field == "texts" and sum(len(t) for t in items if isinstance(t, str)) > INLINE_MAX_TEXT_CHARS:
        raise Deferred("long texts")


def check_batch(items, field: str, max_batch: int) -> None:
    """A list field must hold 1..``max_batch`` items (413 over the limit)."""
    if items is None:
        raise InvalidInput(f"{field}: field required", field=field, reason="field required")
    if len(items) == 0:
        raise InvalidInput(f"{field}: must hold at least one item", field=field, reason="must hold at least one item")
    if len(items) > max_batch:
        reason = f"{len(items)} items; the limit is MAX_BATCH={max_batch}"
        raise PayloadTooLarge(f"{field}: {reason}", field=field, reason=reason, code="batch_too_large")


def decode_images(items: list, max_image_pixels: int, field: str = "images", inline: bool = False) -> np.ndarray:
    """Items (nested lists or base64 strings) -> float32 (N, 32, 32, 3) in [0, 1].

    ``inline``: refuse (:class:`Deferred`) more than INLINE_MAX_ITEMS items or an image over INLINE_MAX_PIXELS."""
    if inline:
        inline_size_ok(items, field)
    return np.stack([decode_image(item, i, max_image_pixels, field, inline) for i, item in enumerate(items)])


def decode_image(item, index: int, max_image_pixels: int, field: str = "images", inline: bool = False) -> np.ndarray:
    if isinstance(item, str):
        return _from_base64(item, index, max_image_pixels, field, inline)
    if isinstance(item, list):
        return _from_nested_list(item, index, field)
    raise item_error(field, index, f"expected a base64 PNG/JPEG string or a 32x32x3 nested list of numbers, "
                                   f"received {_json_type(item)}")


def _json_type(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", dict: "an object",
            type(None): "null", str: "a string", list: "an array"}.get(type(value), type(value).__name__)


def _from_nested_list(item: list, index: int, field: str) -> np.ndarray:
    try:
        arr = np.asarray(item)
    except (ValueError, TypeError):
        raise item_error(field, index, f"expected a nested list of shape {IMAGE_SHAPE}; received ragged lists "
                                       "(rows or pixels of different lengths)") from None
    if arr.shape != IMAGE_SHAPE:
        raise item_error(field, index, f"expected shape {IMAGE_SHAPE} (height, width, RGB), received {arr.shape}")
    if arr.dtype.kind not in "iuf" or any(type(v) is bool for row in item for px in row for v in px):
        bad = next(((r, c, k, v) for r, row in enumerate(item) for c, px in enumerate(row) for k, v in enumerate(px)
                    if type(v) not in (int, float)), None)
        where = f" at [{bad[0]}][{bad[1]}][{bad[2]}] ({_json_type(bad[3])})" if bad else ""
        raise item_error(field, index, f"every value must be a number{where}")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        r, c, k = (int(v) for v in np.argwhere(~finite)[0])
        raise item_error(field, index, f"value at [{r}][{c}][{k}] is {arr[r, c, k]}; NaN and infinities are not allowed")
    outside = (arr < 0) | (arr > 1)
    if outside.any():
        r, c, k = (int(v) for v in np.argwhere(outside)[0])
        raise item_error(field, index, f"value at [{r}][{c}][{k}] is {arr[r, c, k]!r}; values must be in [0, 1] "
                                       "(send pixels divided by 255, or the image file as base64)")
    return arr.astype(np.float32)


def _from_base64(text: str, index: int, max_image_pixels: int, field: str, inline: bool = False) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    compact = "".join(_DATA_URL.sub("", text.strip(), count=1).split())
    if not compact:
        raise item_error(field, index, "empty string; expected a base64 PNG or JPEG file")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise item_error(field, index, f"not valid base64 ({exc})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as img:
                if img.format not in IMAGE_FORMATS:
                    raise item_error(field, index, f"image format {img.format} is not supported; send PNG or JPEG")
                width, height = img.size
                if width * height > max_image_pixels:
                    raise item_error(field, index, f"image is {width}x{height} = {width * height} pixels; the limit is "
                                     f"MAX_IMAGE_PIXELS={max_image_pixels} (decompression-bomb guard)",
                                     cls=PayloadTooLarge, code="image_too_large")
                if inline and width * height > INLINE_MAX_PIXELS:
                    raise Deferred(f"a {width}x{height} image")
                if img.format == "JPEG":
                    img.draft("RGB", IMAGE_SHAPE[:2])  # decode a big JPEG at a reduced scale
                rgb = img.convert("RGB")
                if rgb.size != IMAGE_SHAPE[1::-1]:
                    rgb = rgb.resize(IMAGE_SHAPE[1::-1], Image.Resampling.BILINEAR)
                pixels = np.asarray(rgb, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise item_error(field, index, f"decompression bomb refused ({exc})", cls=PayloadTooLarge,
                         code="image_too_large") from None
    except UnidentifiedImageError:
        raise item_error(field, index, f"decoded {len(raw)} bytes that are not a PNG or JPEG image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt file
        raise item_error(field, index, f"could not decode the image ({type(exc).__name__}: {exc})") from None
    return pixels.astype(np.float32) / 255.0


def check_texts(items: list[str], field: str = "texts") -> list[str]:
    """Texts must be non-blank strings (types are already checked by the request schema)."""
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise item_error(field, i, f"expected a string, received {_json_type(text)}")
        if not text.strip():
            raise item_error(field, i, "empty text; send at least one word")
    return items


def encode_png_base64(pixels: np.ndarray) -> str:
    """uint8 or [0, 1] float (H, W, 3) -> base64 PNG (used by the OpenAPI example and the tests)."""
    from PIL import Image

    arr = pixels if pixels.dtype == np.uint8 else np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


__all__ = ["Deferred", "check_batch", "check_texts", "inline_size_ok", "decode_image", "decode_images", "encode_png_base64", "IMAGE_SHAPE"]
