"""Request items -> the network's input, following each model's :class:`InputSpec`, with a precise error
(field, item index, reason) for every bad item.

``images``: each item a base64 string (optionally a ``data:image/...;base64,`` URL) of a PNG or JPEG of any
size, converted to the model's channels (L, RGB or RGBA), resized to its height x width (Pillow bilinear,
antialiased) and scaled by 1/255; or a (height, width, channels) nested list of numbers in [0, 1].
``texts``: strings holding at least one token (a character that is neither ASCII whitespace nor ASCII
punctuation, :data:`TEXT_PATTERN`), for models with a vectorizer; turning them into ids is the vectorizer's job.
``inputs``: the network's own input tensors as nested lists, for every model: numbers of the spec's shape,
integers for integer inputs, in the spec's value range, token ids in [0, vocabulary) with at least one non-zero.

:func:`network_batch` is the one entry point: a request's fields -> the batch a backend takes.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from itertools import chain

import numpy as np

from .backends.base import InputSpec
from .errors import InvalidInput, PayloadTooLarge, item_error

IMAGE_SHAPE = (32, 32, 3)   # the committed cnn's input (the default image shape)
DEFAULT_IMAGE = InputSpec("image", IMAGE_SHAPE, "float32", value_range=(0.0, 1.0))
CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
#: A text must contain a match: a character TextVectorization keeps (neither ASCII whitespace nor ASCII
#: punctuation). The OpenAPI document carries the same pattern, so the schema and this check agree exactly.
TEXT_PATTERN = "[^ \\t\\n\\r\\u000b\\u000c!-/:-@\\[-`{-~]"
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


def decode_images(items: list, max_image_pixels: int, field: str = "images", inline: bool = False,
                  spec: InputSpec | None = None) -> np.ndarray:
    """Items (nested lists or base64 strings) -> float (N, H, W, C) in [0, 1], as ``spec`` says (default:
    the committed cnn's 32x32x3 float32).

    ``inline``: refuse (:class:`Deferred`) more than INLINE_MAX_ITEMS items or an image over INLINE_MAX_PIXELS."""
    spec = spec or DEFAULT_IMAGE
    if inline:
        inline_size_ok(items, field)
    return np.stack([decode_image(item, i, max_image_pixels, field, inline, spec) for i, item in enumerate(items)])


def decode_image(item, index: int, max_image_pixels: int, field: str = "images", inline: bool = False,
                 spec: InputSpec | None = None) -> np.ndarray:
    spec = spec or DEFAULT_IMAGE
    if isinstance(item, str):
        return _from_base64(item, index, max_image_pixels, field, inline, spec)
    if isinstance(item, list):
        return _from_nested_list(item, index, field, spec, value_range=(0.0, 1.0))
    raise item_error(field, index, f"expected a base64 PNG/JPEG string or a {_shape_text(spec.shape)} nested list "
                                   f"of numbers, received {_json_type(item)}")


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def _json_type(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", dict: "an object",
            type(None): "null", str: "a string", list: "an array"}.get(type(value), type(value).__name__)


def _first_bad_leaf(item, integer: bool, depth: int, path=()):
    """The index path and value of the first leaf that is not a JSON number (an integer if ``integer``), or
    of the first list nested deeper than ``depth`` levels (the walk goes no deeper: a body may nest a
    thousand levels)."""
    if isinstance(item, list):
        if len(path) == depth:
            return path, item
        for i, v in enumerate(item):
            found = _first_bad_leaf(v, integer, depth, (*path, i))
            if found is not None:
                return found
        return None
    ok = type(item) is int or (type(item) is float and (not integer or item.is_integer()))
    return None if ok else (path, item)


def _has_bool(item) -> bool:
    if isinstance(item, list):
        return any(_has_bool(v) for v in item)
    return type(item) is bool


def _where(at) -> str:
    return "".join(f"[{int(i)}]" for i in at)


def _plain_numbers(item: list, shape: tuple[int, ...]) -> np.ndarray | None:
    """A nested list of exactly ``shape`` whose leaves are all JSON numbers (int or float, never bool) ->
    float64 array, at C speed (a 32x32x3 image: ~4x faster than ``np.asarray`` on the nested lists, which
    also reads booleans as numbers and needs a Python walk to find them); None if anything is off, for
    :func:`_from_nested_list`'s slow path to say what."""
    level = [item]
    try:
        for size in shape:
            if set(map(len, level)) != {size}:
                return None
            level = list(chain.from_iterable(level))
        if not set(map(type, level)) <= {float, int}:
            return None
        return np.array(level, dtype=np.float64).reshape(shape)
    except (TypeError, OverflowError):  # a leaf above its level (len of a number), an int beyond float64
        return None


def _parse_nested(item: list, index: int, field: str, spec: InputSpec) -> np.ndarray:
    """The slow path of :func:`_from_nested_list`: ``np.asarray`` and a walk of the leaves, naming what
    is wrong (ragged, nested too deep, wrong shape, a leaf that is not a number, a boolean)."""
    shape = tuple(spec.shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(item)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is None or arr.dtype == object:
        bad = _first_bad_leaf(item, spec.is_integer, len(shape))
        if bad is not None and isinstance(bad[1], list):
            raise item_error(field, index, f"expected a nested list of shape {shape}; received a list at "
                                           f"{_where(bad[0])}, nested deeper than {len(shape)} levels")
        if bad is not None:
            raise item_error(field, index, f"every value must be {'an integer' if spec.is_integer else 'a number'} "
                                           f"(at {_where(bad[0])}: {_json_type(bad[1])})")
        raise item_error(field, index, f"expected a nested list of shape {shape}; received ragged lists "
                                       "(rows or pixels of different lengths)")
    if arr.shape != shape:
        what = " (height, width, channels)" if spec.kind == "image" else ""
        raise item_error(field, index, f"expected shape {shape}{what}, received {arr.shape}")
    integer = spec.is_integer
    has_bool = _has_bool(item)
    if arr.dtype.kind not in "iuf" or has_bool or (integer and arr.dtype.kind == "f"):
        bad = _first_bad_leaf(item, integer, len(shape))  # JSON Schema's integers include 9.0: integral floats are integers
        if bad is not None or arr.dtype.kind not in "iuf" or has_bool:
            where = f" at {_where(bad[0])} ({_json_type(bad[1])})" if bad else ""
            raise item_error(field, index, f"every value must be {'an integer' if integer else 'a number'}{where}")
    return arr


def _from_nested_list(item: list, index: int, field: str, spec: InputSpec,
                      value_range: tuple[float, float] | None) -> np.ndarray:
    """One item of the network's input as nested lists -> an array of ``spec``'s shape and dtype."""
    shape = tuple(spec.shape)
    arr = None if spec.is_integer else _plain_numbers(item, shape)
    if arr is None:
        arr = _parse_nested(item, index, field, spec)
    integer = spec.is_integer
    if integer:
        info = np.iinfo(spec.numpy_dtype)
        if arr.dtype.kind == "f":
            arr = np.asarray(item, dtype=object).astype(np.float64)   # integral floats; bounds checked next
        outside = (arr < info.min) | (arr > info.max)
        if outside.any():
            raise item_error(field, index, f"value at {_where(np.argwhere(outside)[0])} is outside {spec.dtype}")
        if spec.kind == "text":
            vocab = spec.vocabulary_size
            bad = (arr < 0) | (arr >= vocab) if vocab else (arr < 0)
            if bad.any():
                at = np.argwhere(bad)[0]
                bound = f"in [0, {vocab})" if vocab else "non-negative"
                raise item_error(field, index, f"token id at {_where(at)} is {int(arr[tuple(at)])}; ids must be {bound}")
            if not arr.any():
                raise item_error(field, index, "every token id is 0 (padding); send at least one token")
        return arr.astype(spec.numpy_dtype)
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        at = np.argwhere(~finite)[0]
        value = arr[tuple(at)]
        what = "NaN" if np.isnan(value) else f"{value} (Infinity, or a number beyond float64's range such as 1e400)"
        raise item_error(field, index, f"value at {_where(at)} is {what}; NaN and infinities are not allowed")
    if value_range is not None:
        lo, hi = value_range
        outside = (arr < lo) | (arr > hi)
        if outside.any():
            at = np.argwhere(outside)[0]
            hint = " (send pixels divided by 255, or the image file as base64)" if (lo, hi) == (0.0, 1.0) else ""
            raise item_error(field, index, f"value at {_where(at)} is {arr[tuple(at)]!r}; values must be in "
                                           f"[{lo:g}, {hi:g}]{hint}")
    cast = arr.astype(spec.numpy_dtype)
    if not np.isfinite(cast).all():  # a float64 number beyond float32's range
        at = np.argwhere(~np.isfinite(cast))[0]
        raise item_error(field, index, f"value at {_where(at)} is {arr[tuple(at)]!r}, outside {spec.dtype}'s range")
    return cast


def _from_base64(text: str, index: int, max_image_pixels: int, field: str, inline: bool,
                 spec: InputSpec) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    height, width, channels = spec.shape
    mode = CHANNEL_MODES.get(channels)
    if mode is None:
        raise item_error(field, index, f"this model takes {channels} channels; send a nested list, not an image file")
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
            with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as img:  # no probing of other formats
                if img.format not in IMAGE_FORMATS:
                    raise item_error(field, index, f"image format {img.format} is not supported; send PNG or JPEG")
                w, h = img.size
                if w * h > max_image_pixels:
                    raise item_error(field, index, f"image is {w}x{h} = {w * h} pixels; the limit is "
                                     f"MAX_IMAGE_PIXELS={max_image_pixels} (decompression-bomb guard)",
                                     cls=PayloadTooLarge, code="image_too_large")
                if inline and w * h > INLINE_MAX_PIXELS:
                    raise Deferred(f"a {w}x{h} image")
                if img.format == "JPEG":
                    img.draft("L" if mode == "L" else "RGB", (width, height))  # decode a big JPEG at a reduced scale
                converted = img if img.mode == mode else img.convert(mode)  # convert() would copy
                if converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.uint8).reshape(height, width, channels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise item_error(field, index, f"decompression bomb refused ({exc})", cls=PayloadTooLarge,
                         code="image_too_large") from None
    except UnidentifiedImageError:
        other = _image_format(raw)
        if other is not None:
            raise item_error(field, index, f"image format {other} is not supported; send PNG or JPEG") from None
        raise item_error(field, index, f"decoded {len(raw)} bytes that are not a PNG or JPEG image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt file
        raise item_error(field, index, f"could not decode the image ({type(exc).__name__}: {exc})") from None
    return pixels.astype(spec.numpy_dtype) / spec.numpy_dtype.type(255.0)


def _image_format(raw: bytes) -> str | None:
    """The format Pillow reads ``raw`` as (GIF, BMP, ...), for the error message; None if none."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(raw)) as img:
                return img.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


_TEXT_TOKEN = re.compile(TEXT_PATTERN)


def check_texts(items: list[str], field: str = "texts") -> list[str]:
    """Texts must be strings holding at least one token character (:data:`TEXT_PATTERN`, the schema's rule)."""
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise item_error(field, i, f"expected a string, received {_json_type(text)}")
        if not _TEXT_TOKEN.search(text):
            reason = ("empty text; send at least one word" if not text.strip() else
                      "no words left after standardisation (lowercase, punctuation stripped, split on "
                      "whitespace); send at least one word")
            raise item_error(field, i, reason)
    return items


def decode_inputs(items: list, spec: InputSpec, field: str = "inputs", inline: bool = False) -> np.ndarray:
    """The network's own input tensors (nested lists, one per item) -> (N, *spec.shape) of spec.dtype."""
    if inline and (len(items) > INLINE_MAX_ITEMS or
                   len(items) * int(np.prod(spec.shape)) > INLINE_MAX_ITEMS * INLINE_MAX_PIXELS * 3):
        raise Deferred(f"{len(items)} {field}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, list):
            raise item_error(field, i, f"expected a nested list of shape {tuple(spec.shape)}, received {_json_type(item)}")
        out.append(_from_nested_list(item, i, field, spec, spec.value_range))
    return np.stack(out)


def network_batch(entry, body, max_batch: int, max_image_pixels: int, inline: bool = False) -> np.ndarray:
    """A request's ``images`` / ``texts`` / ``inputs`` (keys of a dict ``body``, or a
    :class:`service.jsonbody.PredictBody`) -> the batch ``entry`` (a :class:`service.repository.ModelVersion`)
    takes; raises a 4xx naming the field and item.

    Exactly one of the fields ``entry.request_fields`` lists must be present; ``inline``: the call runs on
    the event loop, so it raises :class:`Deferred` as soon as it meets more than a small request's work."""
    get = body.get if isinstance(body, dict) else (lambda k: getattr(body, k, None))
    sent = set(body) if isinstance(body, dict) else body.sent
    for f in ("images", "texts", "inputs"):
        if f in sent and get(f) is None:
            raise InvalidInput(f"{f}: must be a list, not null (leave the field out instead)", field=f,
                               reason="must be a list, not null")
    given = [f for f in ("images", "texts", "inputs") if get(f) is not None]
    accepted = entry.request_fields
    wrong = [f for f in given if f not in accepted]
    if wrong:
        reason = f"the {entry.name} model takes {' or '.join(map(repr, accepted))}, not {wrong[0]!r}"
        if wrong[0] == "texts" and entry.input_spec is not None and entry.input_spec.kind == "text":
            reason += " (it has no text vectorizer: send token ids as 'inputs')"
        raise InvalidInput(f"{wrong[0]}: {reason}", field=wrong[0], reason=reason)
    if not given:
        reason = f"field required: the {entry.name} model takes {' or '.join(map(repr, accepted))}"
        raise InvalidInput(f"{accepted[0]}: {reason}", field=accepted[0], reason=reason)
    if len(given) > 1:
        reason = f"send one of {' or '.join(map(repr, given))}, not both"
        raise InvalidInput(f"{given[1]}: {reason}", field=given[1], reason=reason)
    field = given[0]
    items = get(field)
    check_batch(items, field, max_batch)
    spec = entry.input_spec
    if field == "images":
        return decode_images(items, max_image_pixels, inline=inline, spec=spec)
    if field == "inputs":
        return decode_inputs(items, spec, inline=inline)
    if inline:
        inline_size_ok(items, field)
    ids = np.asarray(entry.vectorizer.transform(list(check_texts(items))), dtype=np.int32)
    empty = np.flatnonzero(~ids.any(axis=1))
    if len(empty):
        raise item_error("texts", int(empty[0]), "no words left after standardisation (lowercase, punctuation "
                                                 "stripped, split on whitespace); send at least one word")
    return ids


def encode_png_base64(pixels: np.ndarray) -> str:
    """uint8 or [0, 1] float (H, W, 3) -> base64 PNG (used by the OpenAPI example and the tests)."""
    from PIL import Image

    arr = pixels if pixels.dtype == np.uint8 else np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


__all__ = ["Deferred", "check_batch", "check_texts", "inline_size_ok", "decode_image", "decode_images", "decode_inputs",
           "network_batch", "encode_png_base64", "IMAGE_SHAPE", "TEXT_PATTERN"]
