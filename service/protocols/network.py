"""Decoded protocol tensors -> a model version's network input, through the same checks as ``POST /predict``.

The tensors a model takes, named alike in both protocols:

* image models: ``images`` -- FP32/FP64 ``[N, H, W, C]`` (the network's input as is, values in the spec's
  range, ours [0, 1]), or BYTES ``[N]`` of encoded PNG/JPEG files (raw bytes in binary data, base64 strings in
  JSON), decoded, resized and scaled exactly as ``/predict``'s base64 images;
* text models: ``texts`` -- BYTES ``[N]`` of UTF-8 texts, through the model's vectorizer exactly as
  ``/predict``'s texts (models with a vectorizer); ``token_ids`` -- INT32/INT64 ``[N, sequence_length]``;
* any other model: ``input`` -- ``[N, *shape]`` of its dtype (FP32/FP64 or INT32/INT64).

Texts, image files and TF Serving's nested lists go through ``/predict``'s own input function
(``inputs.network_batch``); whole tensors are checked here, vectorized, by the same rules (shape, finite,
value range, integer range, token ids in the vocabulary, no all-padding row). The same input gives the same
network input, hence bit-identical probabilities.
"""
from __future__ import annotations

import base64

import numpy as np

from .. import inputs
from ..backends.base import InputSpec
from ..errors import ServiceError
from ..settings import Settings
from .datatypes import fail

IMAGE_INPUT, TEXT_INPUT, TOKEN_INPUT, TENSOR_INPUT = "images", "texts", "token_ids", "input"
PROBABILITIES, LABELS = "probabilities", "labels"
V2_DATATYPES = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "int64": "INT64"}
#: A tensor with more elements than this is decoded in the thread pool, not on the event loop
#: (8 CIFAR-sized images; the same bound /predict's inline decoding has).
INLINE_MAX_ELEMENTS = inputs.INLINE_MAX_ITEMS * 32 * 32 * 3


def input_names(ref) -> tuple[str, ...]:
    """The input tensors a model version takes (one per request), the one its metadata shows first."""
    kind = ref.input_spec.kind
    if kind == "image":
        return (IMAGE_INPUT,)
    if kind == "text":
        return (TEXT_INPUT, TOKEN_INPUT) if ref.vectorizer is not None else (TOKEN_INPUT,)
    return (TENSOR_INPUT,)


def metadata_input(ref) -> tuple[str, str, list[int]]:
    """(name, v2 datatype, shape with -1 for the batch) of the input the metadata shows."""
    spec, name = ref.input_spec, input_names(ref)[0]
    if name == TEXT_INPUT:
        return name, "BYTES", [-1]
    return name, V2_DATATYPES[spec.dtype], [-1, *spec.shape]


def accepted_datatypes(spec: InputSpec, name: str) -> tuple[str, ...]:
    numbers = ("INT32", "INT64") if spec.dtype.startswith("int") else ("FP32", "FP64")
    return {IMAGE_INPUT: (*numbers, "BYTES"), TEXT_INPUT: ("BYTES",), TOKEN_INPUT: ("INT32", "INT64"),
            TENSOR_INPUT: numbers}[name]


def check_input(ref, name: str, datatype: str, where: str) -> None:
    """400 unless the model takes a tensor ``name`` of ``datatype``."""
    names = input_names(ref)
    if name not in names:
        raise fail(where, f"the {ref.name} model takes an input named {' or '.join(map(repr, names))}, not {name!r}")
    if datatype not in accepted_datatypes(ref.input_spec, name):
        raise fail(where, f"input {name!r} takes datatype {' or '.join(accepted_datatypes(ref.input_spec, name))}, "
                          f"not {datatype}")


def check_batch(n: int, where: str, max_batch: int) -> None:
    """1..MAX_BATCH items (413 over the limit, as /predict)."""
    if n == 0:
        raise fail(where, "the batch dimension is 0; send at least one item")
    inputs.check_batch(range(n), where, max_batch)


def tensor_input(arr: np.ndarray, spec: InputSpec, where: str, max_batch: int,
                 vocabulary_size: int | None = None) -> np.ndarray:
    """A whole network-input tensor (N, *spec.shape) -> spec.dtype, by /predict's rules for ``inputs``;
    token ids below ``vocabulary_size`` (default: the spec's)."""
    expected = tuple(spec.shape)
    if arr.ndim != 1 + len(expected) or arr.shape[1:] != expected:
        raise fail(where, f"shape {list(arr.shape)}; this model takes [N, {', '.join(map(str, expected))}]")
    check_batch(arr.shape[0], where, max_batch)
    if spec.dtype.startswith("int"):
        return _integer_tensor(arr, spec, where, vocabulary_size or spec.vocabulary_size)
    finite = np.isfinite(arr)
    if not finite.all():
        at = _at(~finite)
        raise fail(where, f"value at {list(at)} is {arr[at]}; NaN and infinities are not allowed")
    if spec.value_range is not None:
        lo, hi = spec.value_range
        outside = (arr < lo) | (arr > hi)
        if outside.any():
            at = _at(outside)
            hint = " (pixels divided by 255), or send the encoded files as BYTES" if (lo, hi) == (0.0, 1.0) else ""
            raise fail(where, f"value at {list(at)} is {float(arr[at])!r}; values must be in [{lo:g}, {hi:g}]{hint}")
    cast = arr.astype(spec.numpy_dtype, copy=False)
    if not np.isfinite(cast).all():  # an FP64 value beyond float32's range
        at = _at(~np.isfinite(cast))
        raise fail(where, f"value at {list(at)} is {float(arr[at])!r}, outside {spec.dtype}'s range")
    return cast


def _integer_tensor(arr: np.ndarray, spec: InputSpec, where: str, vocab: int | None) -> np.ndarray:
    info = np.iinfo(spec.numpy_dtype)
    outside = (arr < info.min) | (arr > info.max)
    if outside.any():
        raise fail(where, f"value at {list(_at(outside))} is outside {spec.dtype}")
    if spec.kind == "text":
        bad = (arr < 0) | (arr >= vocab) if vocab else (arr < 0)
        if bad.any():
            at = _at(bad)
            bound = f"in [0, {vocab})" if vocab else "non-negative"
            raise fail(where, f"token id at {list(at)} is {int(arr[at])}; ids must be {bound}")
        empty = np.flatnonzero(~arr.reshape(len(arr), -1).any(axis=1))
        if len(empty):
            raise fail(where, f"item {int(empty[0])}: every token id is 0 (padding); send at least one token")
    return arr.astype(spec.numpy_dtype)


def _at(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


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


def predict_input(ref, field: str, items: list, settings: Settings, inline: bool,
                  rename: str | None = None) -> np.ndarray:
    """``/predict``'s input function on ``{field: items}`` (``images``, ``texts`` or ``inputs``); its errors
    name the item as ``rename[i]`` when given (TF Serving's ``instances[i]``)."""
    try:
        return inputs.network_batch(ref.entry, {field: items}, settings.max_batch, settings.max_image_pixels,
                                    inline=inline)
    except ServiceError as err:
        raise renamed(err, field, rename) from None


def renamed(err: ServiceError, field: str, new: str | None) -> ServiceError:
    """The same error naming ``new[i]`` instead of ``field[i]``."""
    if new is None or not (err.field or "").startswith(field):
        return err
    where = new + err.field[len(field):]
    return type(err)(f"{where}: {err.reason}", field=where, index=err.index, reason=err.reason,
                     status=err.status, code=err.code, details=err.details)
