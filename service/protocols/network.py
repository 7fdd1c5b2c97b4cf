"""Decoded protocol tensors -> a backend's network input, through the same checks as ``POST /predict``.

The tensors a model takes, named as in both protocols' metadata:

* image models: ``images`` -- FP32/FP64 ``[N, *input shape]`` with values in [0, 1] (the network's input as
  is), or BYTES ``[N]`` of encoded PNG/JPEG files (raw bytes in binary data, base64 strings in JSON), decoded,
  resized and scaled exactly as ``/predict``'s base64 images;
* text models: ``texts`` -- BYTES ``[N]`` of UTF-8 texts, through the model's vectorizer exactly as
  ``/predict``'s texts; or ``token_ids`` -- INT32/INT64 ``[N, sequence_length]``, the vectorizer's output.

Texts, image files and TF Serving's nested-list instances go through ``/predict``'s own input function, so
the same input gives the same network input, hence bit-identical probabilities, and the same refusals.
"""
from __future__ import annotations

import base64

import numpy as np

from .. import inputs
from ..backends.base import Backend, InputSpec
from ..errors import InvalidInput, ServiceError
from ..settings import Settings
from .datatypes import fail

IMAGE_INPUT, TEXT_INPUT, TOKEN_INPUT = "images", "texts", "token_ids"
PROBABILITIES, LABELS = "probabilities", "labels"
#: A tensor with more elements than this is decoded in the thread pool, not on the event loop
#: (8 CIFAR-sized images; the same bound /predict's inline decoding has).
INLINE_MAX_ELEMENTS = inputs.INLINE_MAX_ITEMS * 32 * 32 * 3


def input_names(spec: InputSpec) -> tuple[str, ...]:
    """The input tensors a model takes (one per request)."""
    return (IMAGE_INPUT,) if spec.kind == "image" else (TEXT_INPUT, TOKEN_INPUT)


def accepted_datatypes(spec: InputSpec, name: str) -> tuple[str, ...]:
    return {IMAGE_INPUT: ("FP32", "FP64", "BYTES"), TEXT_INPUT: ("BYTES",),
            TOKEN_INPUT: ("INT32", "INT64")}[name]


def check_input(spec: InputSpec, name: str, datatype: str, where: str) -> None:
    """400 unless the model takes a tensor ``name`` of ``datatype``."""
    names = input_names(spec)
    if name not in names:
        raise fail(where, f"this {spec.kind} model takes an input named {' or '.join(map(repr, names))}, "
                          f"not {name!r}")
    if datatype not in accepted_datatypes(spec, name):
        raise fail(where, f"input {name!r} takes datatype {' or '.join(accepted_datatypes(spec, name))}, "
                          f"not {datatype}")


def check_batch(n: int, where: str, max_batch: int) -> None:
    """1..MAX_BATCH items (413 over the limit, as /predict)."""
    if n == 0:
        raise fail(where, "the batch dimension is 0; send at least one item")
    inputs.check_batch(range(n), where, max_batch)


def image_tensor(arr: np.ndarray, spec: InputSpec, where: str, max_batch: int) -> np.ndarray:
    """FP32/FP64 (N, *spec.shape) in [0, 1] -> float32, the network's input as is."""
    expected = tuple(spec.shape)
    if arr.ndim != 1 + len(expected) or arr.shape[1:] != expected:
        raise fail(where, f"shape {list(arr.shape)}; this model takes [N, {', '.join(map(str, expected))}]")
    check_batch(arr.shape[0], where, max_batch)
    finite = np.isfinite(arr)
    if not finite.all():
        at = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise fail(where, f"value at {list(at)} is {arr[at]}; NaN and infinities are not allowed")
    outside = (arr < 0) | (arr > 1)
    if outside.any():
        at = tuple(int(i) for i in np.argwhere(outside)[0])
        raise fail(where, f"value at {list(at)} is {float(arr[at])!r}; values must be in [0, 1] (pixels divided by "
                          "255), or send the encoded files as BYTES")
    return arr.astype(np.float32, copy=False)


def token_tensor(arr: np.ndarray, backend: Backend, where: str, max_batch: int) -> np.ndarray:
    """INT32/INT64 (N, sequence_length) ids in [0, vocabulary size) -> int32, at least one non-zero per row."""
    length = backend.input_spec.sequence_length
    if arr.ndim != 2 or arr.shape[1] != length:
        raise fail(where, f"shape {list(arr.shape)}; this model takes [N, {length}] token ids")
    check_batch(arr.shape[0], where, max_batch)
    size = vocabulary_size(backend)
    bad = (arr < 0) | (arr >= size) if size else (arr < 0)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        bound = f"[0, {size})" if size else "non-negative"
        raise fail(where, f"token id at {list(at)} is {int(arr[at])}; ids must be {bound}")
    empty = np.flatnonzero(~arr.any(axis=1))
    if len(empty):
        raise fail(where, f"row {int(empty[0])} is all padding (0); send at least one token")
    return arr.astype(np.int32)


def vocabulary_size(backend: Backend) -> int | None:
    vec = backend.vectorizer
    return len(vec.vocabulary) if vec is not None and getattr(vec, "vocabulary", None) is not None else None


def as_texts(items, where: str) -> list[str]:
    """BYTES elements (bytes from binary data, str from JSON) -> texts."""
    out = []
    for i, v in enumerate(items):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise fail(f"{where}[{i}]", f"not UTF-8 text ({exc})") from None
        out.append(v)
    return out


def as_image_files(items) -> list[str]:
    """BYTES elements -> base64 strings, /predict's form of an encoded file (JSON strings are base64 already)."""
    return [base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v for v in items]


def predict_input(backend: Backend, field: str, items: list, settings: Settings, inline: bool,
                  rename: str | None = None) -> np.ndarray:
    """``/predict``'s input function on ``{field: items}`` (``images`` or ``texts``); its errors name the
    item as ``rename[i]`` when given (TF Serving's ``instances[i]``)."""
    from ..routes.predict import network_input
    from ..schemas import PredictRequest

    bad = next((i for i, v in enumerate(items) if field == "texts" and not isinstance(v, str)), None)
    if bad is not None:
        raise renamed(fail(f"{field}[{bad}]", f"expected a string, received {type(items[bad]).__name__}"),
                      field, rename)
    try:
        return network_input(backend, PredictRequest(**{field: items}), settings, inline=inline)
    except ServiceError as err:
        raise renamed(err, field, rename) from None


def renamed(err: ServiceError, field: str, new: str | None) -> ServiceError:
    """The same error naming ``new[i]`` instead of ``field[i]``."""
    if new is None or not (err.field or "").startswith(field):
        return err
    where = new + err.field[len(field):]
    out = type(err)(f"{where}: {err.reason}", field=where, index=err.index, reason=err.reason,
                    status=err.status, code=err.code, details=err.details)
    return out


__all__ = ["IMAGE_INPUT", "TEXT_INPUT", "TOKEN_INPUT", "PROBABILITIES", "LABELS", "InvalidInput", "input_names",
           "check_input", "image_tensor", "token_tensor", "as_texts", "as_image_files", "predict_input"]
