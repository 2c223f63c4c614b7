"""A safe, versioned byte format for what leaves the process: cache values and Celery results.

Nothing read back from a cache, Redis or a worker is unpickled: a value is decoded by this module
only, and a value it cannot decode is refused (``DecodeError``), never executed. Two kinds of value:

- text (the small JSON "recipes" the cache keeps): ``MAGIC | version | b"s" | UTF-8 bytes``;
- an ``AttentionResult``: ``MAGIC | version | b"r" | header length (uint32 LE) | JSON header |
  padding | raw little-endian arrays``. The header names every dataclass field: JSON-able values
  as (tagged) JSON, numpy arrays as ``{dtype, shape, offset, nbytes}`` into the data part.

Every field of ``AttentionResult`` travels, whatever its name: fields are read with
``dataclasses.fields``, so a field added later (``value_norms``, ``decoder_attentions``,
``cross_attentions``, ``target_tokens`` ...) is carried with no change here, as long as it holds
numpy arrays of plain numbers or booleans, ``None``, numbers, strings, and lists, tuples or
string-keyed dicts of those. A field the reader does not know (written by a newer version) is
ignored; a field it needs and does not find makes the value a miss.

Arrays are decoded into one private, writable buffer; dtypes are limited to booleans, integers,
floats and complex numbers (never ``object``), and every offset and size is checked against the
buffer before use.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import struct
from typing import Any

import numpy as np

from .forward import AttentionResult, check_result

MAGIC = b"AEXC"
VERSION = 1
KIND_RESULT = b"r"
KIND_TEXT = b"s"
_PREFIX = struct.Struct("<4sBc")  # magic, version, kind
_HEADER_LEN = struct.Struct("<I")
_ALIGN = 64
_ARRAY_KINDS = set("biufc")  # bool, signed, unsigned, float, complex: never object, str or void
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 4096
MAX_DEPTH = 32


class DecodeError(ValueError):
    """The bytes are not a value this version can read (foreign, corrupt or from an older format)."""


# --------------------------------------------------------------------------------------------- encoding


def encode(value: AttentionResult | str) -> bytes:
    """``value`` (an ``AttentionResult`` or a ``str``) as bytes. Raises ``TypeError`` for anything else."""
    if isinstance(value, str):
        return _PREFIX.pack(MAGIC, VERSION, KIND_TEXT) + value.encode("utf-8", "surrogatepass")
    if isinstance(value, AttentionResult):
        return _encode_result(value)
    raise TypeError(f"cannot encode {type(value).__name__}: only AttentionResult and str travel")


def _encode_result(result: AttentionResult) -> bytes:
    arrays: list[np.ndarray] = []
    fields = {f.name: _to_json(getattr(result, f.name), arrays, 0) for f in dataclasses.fields(result)}
    table = []
    offset = 0
    for array in arrays:
        offset = _aligned(offset)
        table.append({"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset,
                      "nbytes": int(array.nbytes)})
        offset += int(array.nbytes)
    header = json.dumps({"type": "AttentionResult", "fields": fields, "arrays": table},
                        ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode("ascii")
    start = _PREFIX.size + _HEADER_LEN.size + len(header)
    data_start = _aligned(start)
    out = bytearray(data_start + offset)
    _PREFIX.pack_into(out, 0, MAGIC, VERSION, KIND_RESULT)
    _HEADER_LEN.pack_into(out, _PREFIX.size, len(header))
    out[_PREFIX.size + _HEADER_LEN.size:start] = header
    for array, entry in zip(arrays, table):
        begin = data_start + entry["offset"]
        if entry["nbytes"]:
            out[begin:begin + entry["nbytes"]] = memoryview(array.reshape(-1).view(np.uint8))
    return bytes(out)


def _aligned(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


def _to_json(value: Any, arrays: list[np.ndarray], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError("value nested too deeply to encode")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        array = np.asarray(value)
        if array.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot encode an array of {array.dtype}")
        if array.dtype.str.startswith(">"):  # stored little-endian whatever the machine
            array = array.astype(array.dtype.newbyteorder("<"))
        arrays.append(array if array.flags.c_contiguous else array.copy(order="C"))
        return {"__array__": len(arrays) - 1, "scalar": isinstance(value, np.generic)}
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, arrays, depth + 1) for v in value]}
    if isinstance(value, list):
        return [_to_json(v, arrays, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with string keys can be encoded")
        return {"__dict__": {k: _to_json(v, arrays, depth + 1) for k, v in value.items()}}
    raise TypeError(f"cannot encode a {type(value).__name__}")


# --------------------------------------------------------------------------------------------- decoding


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
        return _decode_result(view)
    raise DecodeError(f"unknown kind {kind!r}")


def _decode_result(view: memoryview) -> AttentionResult:
    if view.nbytes < _PREFIX.size + _HEADER_LEN.size:
        raise DecodeError("truncated header")
    (header_len,) = _HEADER_LEN.unpack_from(view, _PREFIX.size)
    start = _PREFIX.size + _HEADER_LEN.size
    if header_len > MAX_HEADER_BYTES or start + header_len > view.nbytes:
        raise DecodeError("bad header length")
    try:
        header = json.loads(bytes(view[start:start + header_len]).decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting: RecursionError
        raise DecodeError("header is not JSON") from exc
    if not isinstance(header, dict) or header.get("type") != "AttentionResult":
        raise DecodeError("not an AttentionResult")
    fields, table = header.get("fields"), header.get("arrays")
    if not isinstance(fields, dict) or not isinstance(table, list) or len(table) > MAX_ARRAYS:
        raise DecodeError("malformed header")
    data_start = _aligned(start + header_len)
    # One writable copy of the data part: the arrays share it (as the forward pass's arrays are writable).
    buffer = bytearray(view[data_start:]) if data_start <= view.nbytes else bytearray()
    arrays = [_array(entry, buffer) for entry in table]
    known = {f.name: f for f in dataclasses.fields(AttentionResult)}
    kwargs = {}
    for name, raw in fields.items():
        if name in known and known[name].init:
            kwargs[name] = _from_json(raw, arrays, 0)
    try:
        result = AttentionResult(**kwargs)
    except TypeError as exc:  # a field this version needs is missing
        raise DecodeError(f"incomplete result: {exc}") from exc
    try:
        check_result(result)
    except ValueError as exc:
        raise DecodeError(str(exc)) from exc
    return result


def _array(entry: Any, buffer: bytearray) -> np.ndarray:
    if not isinstance(entry, dict):
        raise DecodeError("malformed array entry")
    try:
        dtype = np.dtype(str(entry["dtype"]))
        shape = tuple(int(n) for n in entry["shape"])
        offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError("malformed array entry") from exc
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.itemsize == 0:
        raise DecodeError(f"refused dtype {dtype}")
    if any(n < 0 for n in shape) or offset < 0 or nbytes < 0:
        raise DecodeError("negative size")
    if math.prod(shape) * dtype.itemsize != nbytes or offset + nbytes > len(buffer):
        raise DecodeError("array does not fit the data")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    count = nbytes // dtype.itemsize
    array = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.byteorder not in ("=", "|") else array


def _from_json(raw: Any, arrays: list[np.ndarray], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise DecodeError("nested too deeply")
    if raw is None or isinstance(raw, (bool, int, float, str)):
        return raw
    if isinstance(raw, list):
        return [_from_json(v, arrays, depth + 1) for v in raw]
    if isinstance(raw, dict) and len(raw) <= 2:
        if "__array__" in raw:
            index = raw["__array__"]
            if not isinstance(index, int) or not 0 <= index < len(arrays):
                raise DecodeError("bad array reference")
            array = arrays[index]
            return array[()] if raw.get("scalar") else array
        if "__tuple__" in raw and isinstance(raw["__tuple__"], list):
            return tuple(_from_json(v, arrays, depth + 1) for v in raw["__tuple__"])
        if "__dict__" in raw and isinstance(raw["__dict__"], dict):
            return {str(k): _from_json(v, arrays, depth + 1) for k, v in raw["__dict__"].items()}
        if "__float__" in raw and raw["__float__"] in ("nan", "inf", "-inf"):
            return float(raw["__float__"])
    raise DecodeError("malformed field value")


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
