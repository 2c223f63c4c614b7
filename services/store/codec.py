"""A safe, versioned byte format for what leaves the process: cache values and Celery results.

Nothing read back from a cache, Redis or a worker is unpickled: a value is decoded by this module
only, and a value it cannot decode is refused (``DecodeError``), never executed. Two kinds of value:

- text (the small JSON "recipes" the cache keeps): ``MAGIC | version | b"s" | UTF-8 bytes``;
- an ``AttentionResult``: ``MAGIC | version | b"r" |`` the binary frame of ``services.serial``
  (``pack``): a JSON header naming every field of the result (the one field table, shared with the
  JSON export), then the arrays' raw bytes. Every size is checked against the buffer before use.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from .. import serial
from ..result import AttentionResult, check_result

MAGIC = b"AEXC"
VERSION = 3  # 3: recorded results (queries, keys, recipe); 2: the header of services.serial
KIND_RESULT = b"r"
KIND_TEXT = b"s"
_PREFIX = struct.Struct("<4sBc")  # magic, version, kind
_RESULT = "AttentionResult"


class DecodeError(serial.SerialError):
    """The bytes are not a value this version can read (foreign, corrupt or from an older format)."""


def encode(value: AttentionResult | str) -> bytes:
    """``value`` (an ``AttentionResult`` or a ``str``) as bytes. Raises ``TypeError`` for anything else."""
    if isinstance(value, str):
        return _PREFIX.pack(MAGIC, VERSION, KIND_TEXT) + value.encode("utf-8", "surrogatepass")
    if isinstance(value, AttentionResult):
        return serial.pack(value, _RESULT, prefix=_PREFIX.pack(MAGIC, VERSION, KIND_RESULT))
    raise TypeError(f"cannot encode {type(value).__name__}: only AttentionResult and str travel")


def decode(data: bytes | bytearray | memoryview) -> AttentionResult | str:
    """The value ``encode`` made. Raises ``DecodeError`` for bytes it did not make (a pickle, junk,
    a truncated or foreign value); never runs code from ``data``."""
    view = memoryview(data)
    if view.nbytes < _PREFIX.size:
        raise DecodeError("too short")
    magic, version, kind = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise DecodeError("not an Attention Explorer value")
    if version != VERSION:
        raise DecodeError(f"format version {version}, this version reads {VERSION}")
    if kind == KIND_TEXT:
        try:
            return bytes(view[_PREFIX.size:]).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError("text is not UTF-8") from exc
    if kind == KIND_RESULT:
        try:
            return serial.unpack(view, AttentionResult, _RESULT, check_result, prefix_len=_PREFIX.size)
        except serial.SerialError as exc:
            raise DecodeError(str(exc)) from None
    raise DecodeError(f"unknown kind {kind!r}")


# --------------------------------------------------------------------------------------------- JSON transport


def to_json_payload(value: AttentionResult | str) -> dict[str, str]:
    """``value`` as a JSON-safe dict (for Celery's json serializer): the encoded bytes in base64."""
    return {"format": "attention-explorer", "version": str(VERSION),
            "data": base64.b64encode(encode(value)).decode("ascii")}


def from_json_payload(payload: Any) -> AttentionResult | str:
    """The value ``to_json_payload`` made. Raises ``DecodeError`` for anything else."""
    if not isinstance(payload, dict) or payload.get("format") != "attention-explorer":
        raise DecodeError("not an Attention Explorer payload")
    data = payload.get("data")
    if not isinstance(data, str):
        raise DecodeError("payload without data")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise DecodeError("payload data is not base64") from exc
    return decode(raw)
