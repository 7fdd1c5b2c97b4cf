"""Triton's binary tensor data extension (``docs/protocol/extension_binary_data.md``) on the HTTP body.

A request or response body is a JSON object, optionally followed by the tensors' binary data in the order the
JSON lists them; ``Inference-Header-Content-Length`` gives the JSON's length whenever binary data follows.
An input says it is binary with ``parameters.binary_data_size``; an output is returned binary when its
``parameters.binary_data`` is true, or, when it does not say, when the request's ``parameters.binary_data_output``
is. tritonclient sends inputs this way by default, and asks for binary outputs when no outputs are named.
"""
from __future__ import annotations

import json

from ..errors import InvalidInput
from ..jsonbody import too_deep

HEADER = "Inference-Header-Content-Length"
CONTENT_TYPE = "application/octet-stream"


def split_body(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """The request body -> (its JSON object, the binary data after it)."""
    if header_length is None:
        size = len(body)
    else:
        try:
            size = int(header_length)
        except ValueError:
            size = -1
        if not 0 < size <= len(body):
            reason = f"{HEADER} is {header_length!r}; it must be the JSON's length, 1..{len(body)} (the body's size)"
            raise InvalidInput(reason, field=HEADER, reason=reason)
    try:
        header = json.loads(bytes(memoryview(body)[:size]))
    except (UnicodeDecodeError, ValueError) as exc:
        hint = "" if header_length is not None else f" (binary data after the JSON needs the {HEADER} header)"
        reason = f"malformed JSON: {exc}{hint}"
        raise InvalidInput(reason, field="body", reason=reason, code="malformed_json") from None
    except RecursionError:
        raise too_deep() from None
    if not isinstance(header, dict):
        reason = f"the body must be a JSON object, received {type(header).__name__}"
        raise InvalidInput(reason, field="body", reason=reason)
    return header, memoryview(body)[size:]


def slice_binary(rest: memoryview, sizes: list[tuple[str, int]]) -> list[memoryview]:
    """The binary data after the JSON -> one slice per ``(tensor, binary_data_size)``, in order; the sizes must
    account for every byte."""
    total = sum(size for _, size in sizes)
    if total != len(rest):
        named = ", ".join(f"{where} {size}" for where, size in sizes) or "none"
        reason = (f"{len(rest)} bytes of binary data follow the JSON, the inputs' binary_data_size add up to "
                  f"{total} ({named})")
        raise InvalidInput(reason, field="body", reason=reason)
    out, pos = [], 0
    for _, size in sizes:
        out.append(rest[pos:pos + size])
        pos += size
    return out


def join_body(header: dict, chunks: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """The response JSON and its outputs' binary data -> (body, headers); without binary data, plain JSON."""
    text = json.dumps(header, separators=(",", ":")).encode()
    if not chunks:
        return text, {"Content-Type": "application/json"}
    return text + b"".join(chunks), {"Content-Type": CONTENT_TYPE, HEADER: str(len(text))}
