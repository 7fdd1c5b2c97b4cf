"""One codec per Open Inference Protocol v2 datatype: a tensor's JSON ``data`` or binary bytes <-> a NumPy array.

Both directions check the data against the declared ``shape`` and never reshape silently (triton#7171 was a
server that did): JSON data is either the tensor in its natural nesting (exactly ``shape``) or flat row-major
with ``prod(shape)`` elements; binary data is little-endian row-major, ``prod(shape) * itemsize`` bytes, and
a BYTES element is a 4-byte little-endian length followed by that many bytes (Triton's
``extension_binary_data.md``). Every refusal is an :class:`~service.errors.InvalidInput` naming the tensor.

BYTES tensors decode to object arrays of ``str`` (JSON) or ``bytes`` (binary); what they mean (texts, image
files) is the model's business (:mod:`.network`).
"""
from __future__ import annotations

import math
import struct

import numpy as np

from ..errors import InvalidInput

#: v2 datatype -> NumPy dtype (little-endian on the wire). BYTES is variable-length (object array).
NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
#: Every datatype of the protocol; BF16 is known (so it is named as unsupported) but has no NumPy dtype here.
DATATYPES = tuple(NUMPY_DTYPES) + ("BF16",)
_LENGTH = struct.Struct("<I")


def fail(where: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{where}: {reason}", field=where, reason=reason)


def check_datatype(datatype: str, where: str) -> str:
    if datatype not in DATATYPES:
        raise fail(where, f"unknown datatype {datatype!r}; the protocol's datatypes are {', '.join(DATATYPES)}")
    if datatype not in NUMPY_DTYPES:
        raise fail(where, f"datatype {datatype} is not supported by this server")
    return datatype


def check_shape(shape, where: str) -> tuple[int, ...]:
    """A tensor shape: a list of non-negative integers."""
    if not isinstance(shape, (list, tuple)) or any(type(d) is not int or d < 0 for d in shape):
        raise fail(where, f"shape must be a list of non-negative integers, received {shape!r}")
    return tuple(shape)


def element_count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


# ------------------------------------------------------------------ JSON data
def from_json(data, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """JSON ``data`` (nested exactly as ``shape``, or flat row-major) -> an array of ``shape``."""
    dtype = NUMPY_DTYPES[check_datatype(datatype, where)]
    if data is None:
        raise fail(where, "no data: give `data`, or `parameters.binary_data_size` and the bytes after the JSON")
    try:
        arr = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except (ValueError, TypeError):
        raise fail(where, "data is ragged (nested lists of different lengths)") from None
    if arr.dtype == object and datatype == "BYTES" and arr.ndim and any(isinstance(v, list) for v in arr.flat):
        raise fail(where, "data is ragged (nested lists of different lengths)")
    _check_layout(arr.shape, shape, where)
    if datatype == "BYTES":
        bad = next((v for v in arr.flat if not isinstance(v, str)), None)
        if bad is not None:
            raise fail(where, f"BYTES data must be strings, found {_json_type(bad)}")
        return arr.reshape(shape)
    kind = arr.dtype.kind
    if dtype.kind in "iu" and kind == "f" and all(type(v) in (int, float) and float(v).is_integer()
                                                  for v in _flat(data)):
        # JSON Schema's integers include 9.0 (as /predict's `inputs` take them); 1.5 is still refused
        arr, kind = np.array([int(v) for v in _flat(data)], dtype=object).reshape(arr.shape), "i"
    wanted = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers"}[dtype.kind]
    accepted = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[dtype.kind]
    if kind not in accepted or (kind != "b" and arr.size and _has_bool(data)):
        bad = _first_wrong(data, dtype.kind)
        found = _json_type(bad) if bad is not None else "a number outside the 64-bit range"
        raise fail(where, f"{datatype} data must be {wanted}, found {found}")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        low, high = int(arr.min()), int(arr.max())
        if low < info.min or high > info.max:
            raise fail(where, f"value {low if low < info.min else high} is out of range for {datatype} "
                              f"[{info.min}, {info.max}]")
    return arr.astype(dtype).reshape(shape)


def _check_layout(found: tuple[int, ...], shape: tuple[int, ...], where: str) -> None:
    expected = element_count(shape)
    if found == shape or (len(found) == 1 and found[0] == expected):
        return
    count = math.prod(found)
    if count == expected:
        raise fail(where, f"data is nested as {list(found)}, shape is {list(shape)}: give the data nested exactly "
                          f"as the shape, or flat (row-major)")
    raise fail(where, f"shape {list(shape)} holds {expected} elements, data holds {count} (nested as {list(found)})")


def _flat(data):
    if isinstance(data, list):
        for v in data:
            yield from _flat(v)
    else:
        yield data


def _has_bool(data) -> bool:
    return any(type(v) is bool for v in _flat(data))


def _first_wrong(data, kind: str):
    ok = {"b": (bool,), "i": (int,), "u": (int,), "f": (int, float)}[kind]
    return next((v for v in _flat(data) if type(v) not in ok), None)


def _json_type(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", dict: "an object", type(None): "null",
            str: "a string", list: "an array", bytes: "bytes"}.get(type(value), type(value).__name__)


def to_json(arr: np.ndarray, datatype: str) -> list:
    """An array -> flat row-major JSON data (BYTES elements as UTF-8 strings)."""
    if datatype == "BYTES":
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
    return arr.reshape(-1).tolist()


# ------------------------------------------------------------------ binary data
def from_binary(raw: bytes | memoryview, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """``binary_data_size`` bytes -> an array of ``shape`` (numbers little-endian; BYTES length-prefixed)."""
    dtype = NUMPY_DTYPES[check_datatype(datatype, where)]
    count = element_count(shape)
    if datatype == "BYTES":
        return np.array(deserialize_bytes(raw, count, where), dtype=object).reshape(shape)
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise fail(where, f"binary_data_size is {len(raw)} bytes; shape {list(shape)} of {datatype} needs {needed}")
    arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)
    if datatype == "BOOL" and arr.size and np.frombuffer(raw, np.uint8).max() > 1:
        raise fail(where, "BOOL binary data must be bytes 0 or 1")
    return arr.astype(dtype)  # native byte order, and a copy the request's buffer does not own


def deserialize_bytes(raw: bytes | memoryview, count: int, where: str) -> list[bytes]:
    """``count`` length-prefixed elements, filling ``raw`` exactly."""
    view, out, pos = memoryview(raw), [], 0
    while pos < len(view):
        if pos + 4 > len(view):
            raise fail(where, f"BYTES binary data ends inside the length of element {len(out)}")
        (size,) = _LENGTH.unpack_from(view, pos)
        pos += 4
        if pos + size > len(view):
            raise fail(where, f"BYTES element {len(out)} declares {size} bytes, {len(view) - pos} remain")
        out.append(bytes(view[pos:pos + size]))
        pos += size
        if len(out) > count:
            break
    if len(out) != count:
        raise fail(where, f"BYTES binary data holds {'more than ' if len(out) > count else ''}{len(out)} "
                          f"elements; the shape holds {count}")
    return out


def to_binary(arr: np.ndarray, datatype: str) -> bytes:
    """An array -> its binary data (numbers little-endian row-major; BYTES length-prefixed UTF-8)."""
    if datatype == "BYTES":
        parts = []
        for v in arr.reshape(-1):
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts += (_LENGTH.pack(len(b)), b)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=NUMPY_DTYPES[datatype].newbyteorder("<")).tobytes()
