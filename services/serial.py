"""How a result is written out: ONE field table, read from the dataclass, for every format.

A result travels in three containers, all walked by the same code (``fields_of`` / ``build``):

- the cache and Celery's **binary frame** (``pack`` / ``unpack``, framed by ``services.store.codec``):
  a JSON header naming every field, then the arrays' raw little-endian bytes, 64-byte aligned;
- the **JSON document** people download (``to_json_document`` / ``from_json_document``,
  ``result.to_json()`` and ``AttentionResult.from_json(text)``)::

    {
      "format": "attention-explorer-analysis",
      "version": 2,
      "shapes": {"queries": [6, 12, 13, 32], "special_mask": [13], ...},
      "result": {
        "tokens": ["[CLS]", "the", ...],
        "queries": {"dtype": "<f4", "shape": [6, 12, 13, 32], "data": "<base64>"},
        "keys": ..., "scaling": ..., (a recorded result: the maps are computed from these; an
        encoder-decoder model's result holds "maps" (layers, heads, n, n) float16 instead)
        "model_id": "all-MiniLM-L6-v2", "text": "...", ...
      }
    }

- **CSV** of attention weights in long format (``view_csv``, ``comparison_csv``, ``result_csv``).

The table is the dataclass's own: every field (``dataclasses.fields``) travels, whatever its name, so a
field added later is carried with no change here, as long as it holds numpy arrays of plain numbers or
booleans, ``None``, numbers, strings, and lists, tuples or string-keyed dicts of those. Reading back,
the field annotations turn lists back into tuples (``offsets``) and the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` back into floats, so a round trip is exact: same values, same types,
same dtypes. A field the reader does not know (written by a newer version) is ignored; a field it needs
and does not find makes the value unreadable. Arrays are only ever booleans, integers, floats or complex
numbers (never ``object``); every size is checked before use. Nothing here runs code it reads.

JSON arrays are ``{"dtype", "shape", "data"}``: ``dtype`` is numpy's type string (``<f2`` little-endian
float16, ``<f4`` float32, ``|b1`` booleans ...), ``data`` the array's bytes in C order, little-endian,
base64-encoded; any language reads them (Python:
``numpy.frombuffer(base64.b64decode(data), dtype).reshape(shape)``). ``shapes`` repeats each array's
shape for a reader in a hurry (checked, never needed).

CSV has exactly the header ``layer,head,query_index,query_token,key_index,key_token,weight``. Tokens
are quoted as RFC 4180 says (commas, quotes, line breaks), and a text cell a spreadsheet would run as a
formula (starting with ``= + - @``, after any spaces, or with a tab or carriage return) is written as
OWASP advises against CSV injection: a single quote before it, the field quoted (``"'=HYPERLINK(…)"``;
drop the leading ``'`` to get the token back). Numbers are never changed. A weight is written with the fewest digits
that read back to the same value in the array's own dtype (float16 as stored, float32 for transformed
views). Lines end with CRLF, as the csv module writes them.

The bottom of the services: it knows no result type (the class is passed in), no model and no Dash.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import secrets
import struct
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import AttentionExplorerError

FORMAT = "attention-explorer-analysis"
VERSION = 2  # 2: a result's maps are "maps" (or "queries", "keys" and their recipe); 1 called them "attentions"
CSV_HEADER = ("layer", "head", "query_index", "query_token", "key_index", "key_token", "weight")
ARRAY_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex: never object, str or void
_INLINE_KEYS = frozenset({"dtype", "shape", "data"})  # an array inside the JSON document
_REF_KEY = "__array__"  # an array of the binary frame: {"__array__": index into the frame's table}
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MAX_DEPTH = 32
MAX_HEADER_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 4096
_HEADER_LEN = struct.Struct("<I")
_ALIGN = 64


class SerialError(ValueError):
    """Bytes or text that are not a value this version can read (foreign, corrupt, or from a newer version)."""


class ExchangeError(AttentionExplorerError, SerialError):
    """The text is not an analysis this version can read (foreign, corrupt, or from a newer version)."""

    title = "Not an Attention Explorer analysis"


class ExportTooLarge(AttentionExplorerError, ValueError):
    """An export would be larger than the caller allows (``max_rows``)."""

    title = "Too many numbers to export"


# ============================================================================================ the table


def table(cls: type) -> list[tuple[str, Any]]:
    """The field table of a dataclass: ``(name, annotation)`` for every field set by its constructor."""
    hints = _field_hints(cls)
    return [(f.name, hints.get(f.name, Any)) for f in dataclasses.fields(cls) if f.init]


@lru_cache(maxsize=8)
def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: values stay as JSON gives them
        return {}


def fields_of(value: Any, put_array: Callable[[np.ndarray], dict]) -> dict[str, Any]:
    """Every field of the dataclass instance ``value`` as JSON-able data; arrays go through ``put_array``
    (which returns the JSON that stands for the array in this container)."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"expected a dataclass instance, got {type(value).__name__}")
    return {name: _encode(getattr(value, name), put_array, 0) for name, _hint in table(type(value))}


def build(cls: type, raw: dict, get_array: Callable[[dict, str], np.ndarray | None],
          check: Callable[[Any], None] | None = None) -> Any:
    """``cls`` from the data ``fields_of`` wrote. ``get_array(raw, name)`` turns this container's array
    JSON into an array (``None``: not an array). ``check`` (e.g. ``result.check_result``) runs on the
    value built; its ``ValueError`` and a missing field raise ``SerialError``."""
    if not isinstance(raw, dict):
        raise SerialError("the value holds no fields")
    kwargs = {name: _decode(raw[name], hint, get_array, 0, name) for name, hint in table(cls) if name in raw}
    try:
        value = cls(**kwargs)
    except TypeError as exc:  # a field this version needs is missing
        raise SerialError(f"incomplete value: {exc}") from None
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            raise SerialError(str(exc)) from None
    return value


def _encode(value: Any, put_array, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError("value nested too deeply to write")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind not in ARRAY_KINDS or array.dtype.hasobject:
            raise TypeError(f"cannot write an array of {array.dtype}")
        if array.dtype.byteorder in ("=", ">") and array.dtype.itemsize > 1:  # little-endian whatever the machine
            array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        return put_array(array if array.flags.c_contiguous else array.copy(order="C"))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [_encode(v, put_array, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with string keys can be written")
        if value.keys() == _INLINE_KEYS or _REF_KEY in value:
            raise TypeError("a dict shaped like an array would read back as an array")
        return {k: _encode(v, put_array, depth + 1) for k, v in value.items()}
    raise TypeError(f"cannot write a {type(value).__name__}")


def _decode(raw: Any, hint: Any, get_array, depth: int, name: str) -> Any:
    """A JSON value back into Python, shaped by the field's annotation ``hint`` (lists into tuples where
    it says tuple, "NaN" into a float where it says float)."""
    if depth > MAX_DEPTH:
        raise SerialError(f"{name}: nested too deeply.")
    if raw is None:
        return None
    options = _options(hint)
    if isinstance(raw, dict):
        array = get_array(raw, name)
        if array is not None:
            # a numpy scalar was written as a 0-d array: it reads back as the same scalar
            return array[()] if array.ndim == 0 and np.ndarray not in options else array
        value_hint = next((typing.get_args(o)[1] for o in options
                           if typing.get_origin(o) is dict and len(typing.get_args(o)) == 2), Any)
        return {str(k): _decode(v, value_hint, get_array, depth + 1, name) for k, v in raw.items()}
    if isinstance(raw, list):
        for option in options:
            origin, args = typing.get_origin(option), typing.get_args(option)
            if option is tuple or origin is tuple:
                if len(args) == 2 and args[1] is Ellipsis:
                    return tuple(_decode(v, args[0], get_array, depth + 1, name) for v in raw)
                if args and len(args) != len(raw):
                    raise SerialError(f"{name}: expected {len(args)} values, found {len(raw)}.")
                return tuple(_decode(v, args[i] if args else Any, get_array, depth + 1, name) for i, v in enumerate(raw))
            if option is list or origin in (list, Sequence):
                item = args[0] if args else Any
                return [_decode(v, item, get_array, depth + 1, name) for v in raw]
        return [_decode(v, Any, get_array, depth + 1, name) for v in raw]
    if isinstance(raw, str) and raw in _NONFINITE and float in options and str not in options:
        return _NONFINITE[raw]
    return raw


def _options(hint: Any) -> tuple:
    """The types a hint allows: ``X | None`` gives (X, NoneType); ``Any`` gives (Any,)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return (hint,)


def _checked_dtype(raw_dtype: Any, name: str) -> np.dtype:
    try:
        dtype = np.dtype(str(raw_dtype))
    except (TypeError, ValueError):
        raise SerialError(f"{name}: unknown dtype {raw_dtype!r}.") from None
    if dtype.kind not in ARRAY_KINDS or dtype.hasobject or dtype.itemsize == 0 or dtype.shape:
        raise SerialError(f"{name}: refused dtype {dtype}.")
    return dtype


def _checked_shape(shape: Any, name: str) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise SerialError(f"{name}: the shape must be a list of whole numbers.")
    return tuple(shape)


def _native(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("="), copy=False) if array.dtype.byteorder not in ("=", "|") else array


# ============================================================================================ binary frame


def pack(value: Any, kind: str, prefix: bytes = b"") -> bytes:
    """``prefix | header length (uint32 LE) | JSON header | padding | raw arrays``: the header is
    ``{"type": kind, "fields": ..., "arrays": [{dtype, shape, offset, nbytes}, ...]}``; the arrays start
    64-byte aligned from the start of the bytes (the prefix included), offsets count from there."""
    arrays: list[np.ndarray] = []

    def put(array: np.ndarray) -> dict:
        arrays.append(array)
        return {_REF_KEY: len(arrays) - 1}

    fields = fields_of(value, put)
    entries, offset = [], 0
    for array in arrays:
        offset = _aligned(offset)
        entries.append({"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset,
                        "nbytes": int(array.nbytes)})
        offset += int(array.nbytes)
    header = json.dumps({"type": kind, "fields": fields, "arrays": entries},
                        ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    start = len(prefix) + _HEADER_LEN.size + len(header)
    data_start = _aligned(start)
    out = bytearray(data_start + offset)
    out[:len(prefix)] = prefix
    _HEADER_LEN.pack_into(out, len(prefix), len(header))
    out[len(prefix) + _HEADER_LEN.size:start] = header
    for array, entry in zip(arrays, entries):
        begin = data_start + entry["offset"]
        if entry["nbytes"]:
            out[begin:begin + entry["nbytes"]] = memoryview(array.reshape(-1).view(np.uint8))
    return bytes(out)


def _aligned(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


def unpack(view: memoryview, cls: type, kind: str, check: Callable[[Any], None] | None = None,
           prefix_len: int = 0) -> Any:
    """The value ``pack`` wrote (``cls``, ``kind``) with a prefix of ``prefix_len`` bytes (not read here).
    Raises ``SerialError`` for anything else."""
    if view.nbytes < prefix_len + _HEADER_LEN.size:
        raise SerialError("truncated header")
    (header_len,) = _HEADER_LEN.unpack_from(view, prefix_len)
    start = prefix_len + _HEADER_LEN.size
    if header_len > MAX_HEADER_BYTES or start + header_len > view.nbytes:
        raise SerialError("bad header length")
    try:
        header = json.loads(bytes(view[start:start + header_len]).decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting: RecursionError
        raise SerialError("header is not JSON") from exc
    if not isinstance(header, dict) or header.get("type") != kind:
        raise SerialError(f"not a {kind}")
    fields, entries = header.get("fields"), header.get("arrays")
    if not isinstance(fields, dict) or not isinstance(entries, list) or len(entries) > MAX_ARRAYS:
        raise SerialError("malformed header")
    data_start = _aligned(start + header_len)
    # One writable copy of the data part: the arrays share it (as the forward pass's arrays are writable).
    buffer = bytearray(view[data_start:]) if data_start <= view.nbytes else bytearray()
    arrays = [_framed_array(entry, buffer) for entry in entries]

    def get(raw: dict, name: str) -> np.ndarray | None:
        if _REF_KEY not in raw:
            return None
        index = raw[_REF_KEY]
        if len(raw) != 1 or not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(arrays):
            raise SerialError(f"{name}: bad array reference")
        return arrays[index]

    return build(cls, fields, get, check)


def _framed_array(entry: Any, buffer: bytearray) -> np.ndarray:
    if not isinstance(entry, dict):
        raise SerialError("malformed array entry")
    try:
        dtype = _checked_dtype(entry["dtype"], "array")
        shape = _checked_shape(entry["shape"], "array")
        offset, nbytes = entry["offset"], entry["nbytes"]
    except KeyError as exc:
        raise SerialError("malformed array entry") from exc
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (offset, nbytes)):
        raise SerialError("malformed array entry")
    if offset < 0 or nbytes < 0:
        raise SerialError("negative size")
    if math.prod(shape) * dtype.itemsize != nbytes or offset + nbytes > len(buffer):
        raise SerialError("array does not fit the data")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    array = np.frombuffer(buffer, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset).reshape(shape)
    return _native(array)


# ============================================================================================ JSON document


def to_json_document(value: Any) -> str:
    """``value`` (a result) as the JSON document described above."""
    return "".join(JsonDocument(value))


class JsonDocument:
    """The JSON document of ``value``, written piece by piece: iterating gives its text in chunks of at
    most about ``chunk_bytes`` characters (an array's base64 is made a slice at a time, never whole), so a
    download of a large analysis costs a chunk of memory, not the document. ``size`` is its exact
    length in UTF-8 bytes, known before anything is written. ``"".join(JsonDocument(v))`` is
    ``to_json_document(v)``."""

    def __init__(self, value: Any, chunk_bytes: int = 3 * 2**16) -> None:
        self.chunk_bytes = max(3, chunk_bytes // 3 * 3)  # whole base64 quanta: the pieces join into one string
        self._arrays: list[np.ndarray] = []
        nonce = secrets.token_hex(16)

        def put(array: np.ndarray) -> dict:
            self._arrays.append(array)
            return {"dtype": array.dtype.str, "shape": list(array.shape),
                    "data": f"\x00{nonce}:{len(self._arrays) - 1}\x00"}

        fields = fields_of(value, put)
        shapes = {name: raw["shape"] for name, raw in fields.items()
                  if isinstance(raw, dict) and raw.keys() == _INLINE_KEYS}
        # The document with a placeholder where each array's base64 goes: small, and laid out (or escaped,
        # for a lone surrogate) exactly as the whole document would be. JSON writes the placeholder's NULs
        # as \u0000 escapes; the nonce makes it impossible to meet in a token or a text.
        skeleton = _dumps_document({"format": FORMAT, "version": VERSION, "shapes": shapes, "result": fields})
        self._parts = re.split(r"\\u0000" + nonce + r":(\d+)\\u0000", skeleton)
        self.size = sum(len(p.encode("utf-8")) for p in self._parts[::2]) + sum(
            4 * math.ceil(a.nbytes / 3) for a in self._arrays)

    def __iter__(self) -> Iterator[str]:
        for index, part in enumerate(self._parts):
            if index % 2 == 0:
                if part:
                    yield part
                continue
            data = memoryview(self._arrays[int(part)].reshape(-1).view(np.uint8))
            for start in range(0, len(data), self.chunk_bytes):
                yield base64.b64encode(data[start:start + self.chunk_bytes]).decode("ascii")


def from_json_document(text: str | bytes | bytearray, cls: type, check: Callable[[Any], None] | None = None) -> Any:
    """The ``cls`` that ``to_json_document`` wrote. Raises ``ExchangeError`` for anything else (never runs
    code from ``text``: arrays are plain numbers or booleans, checked against their shapes)."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; deep nesting
        raise ExchangeError(f"This is not JSON ({exc}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ExchangeError(f"This JSON is not an Attention Explorer analysis (no \"format\": \"{FORMAT}\").")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExchangeError("The analysis has no valid format version.")
    if version > VERSION:
        raise ExchangeError(f"The analysis was written in format version {version}; this version of "
                            f"Attention Explorer reads version {VERSION}. Update it to read this file.")
    raw = document.get("result")
    if not isinstance(raw, dict):
        raise ExchangeError("The analysis holds no \"result\".")
    if version == 1 and "attentions" in raw and "maps" not in raw:  # version 1 named the maps "attentions"
        raw = {("maps" if name == "attentions" else name): value for name, value in raw.items()}
        shapes = document.get("shapes")
        if isinstance(shapes, dict) and "attentions" in shapes:
            document = {**document, "shapes": {("maps" if n == "attentions" else n): v for n, v in shapes.items()}}
    try:
        value = build(cls, raw, _inline_array, check)
    except ExchangeError:
        raise
    except SerialError as exc:
        raise ExchangeError(f"The analysis is not readable: {exc}") from None
    shapes = document.get("shapes")
    if isinstance(shapes, dict):
        for name, shape in shapes.items():
            found = getattr(value, name, None)
            if isinstance(found, np.ndarray) and list(found.shape) != shape:
                raise ExchangeError(f"The shape of {name} does not match its summary.")
    return value


def _inline_array(raw: dict, name: str) -> np.ndarray | None:
    if raw.keys() != _INLINE_KEYS:
        return None
    dtype = _checked_dtype(raw["dtype"], name)
    shape = _checked_shape(raw["shape"], name)
    if not isinstance(raw["data"], str):
        raise SerialError(f"{name}: the data must be base64 text.")
    try:
        data = base64.b64decode(raw["data"].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SerialError(f"{name}: the data is not base64.") from None
    if math.prod(shape) * dtype.itemsize != len(data):
        raise SerialError(f"{name}: {len(data)} bytes do not make an array of shape {list(shape)} and dtype {dtype}.")
    return _native(np.frombuffer(data, dtype=dtype).reshape(shape).copy())  # a private, writable copy


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _dumps_document(document: dict) -> str:
    """The document with one line per key of the top level and of ``result``: still one JSON value,
    but a person can read the small fields in a text editor. Lone surrogates (possible in a token)
    are written as ``\\uXXXX`` escapes so the text is valid UTF-8."""
    lines = ["{"]
    items = list(document.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key == "result":
            lines.append(f"  {_dumps(key)}: {{")
            fields = list(value.items())
            for j, (name, field) in enumerate(fields):
                lines.append(f"    {_dumps(name)}: {_dumps(field)}" + ("," if j < len(fields) - 1 else ""))
            lines.append("  }" + comma)
        else:
            lines.append(f"  {_dumps(key)}: {_dumps(value)}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape everything that is not ASCII
        return json.dumps(document, ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n"
    return text


# ============================================================================================ CSV


FORMULA_STARTS = ("=", "+", "-", "@")  # OWASP's CSV injection list, with tab and carriage return below
_FORMULA_CONTROLS = ("\t", "\r")


def is_formula_like(field: str) -> bool:
    """Whether a spreadsheet could read the text cell ``field`` as a formula: it starts with ``= + - @``
    (after any spaces: some programs strip them), or with a tab or a carriage return (OWASP, "CSV
    Injection")."""
    return field.startswith(_FORMULA_CONTROLS) or field.lstrip(" ").startswith(FORMULA_STARTS)


def quote_csv(field: str) -> str:
    """One CSV text field: as the csv module writes it (QUOTE_MINIMAL: quoted when it holds a comma, a
    quote or a line break, quotes doubled), except that a field a spreadsheet would run as a formula
    (``is_formula_like``) gets a single quote in front and is always quoted, as OWASP advises:
    ``=HYPERLINK("x")`` is written ``"'=HYPERLINK(""x"")"``. Only text goes through here, never numbers."""
    if is_formula_like(field):
        return "\"'" + field.replace('"', '""') + '"'
    if any(c in field for c in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


@lru_cache(maxsize=1)
def _float16_strings() -> np.ndarray:
    """Every float16 bit pattern as its shortest round-tripping text (a table of 65,536 strings)."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(str)


def _weight_strings(block: np.ndarray) -> list:
    """Weights as text: the fewest digits that read back to the same value in the array's dtype."""
    if block.dtype == np.float16:
        return _float16_strings()[np.ascontiguousarray(block).view(np.uint16)].tolist()
    if block.dtype.kind != "f":
        block = block.astype(np.float64)
    return block.astype(str).tolist()


def _labels(values: Sequence[Any] | range | None, count: int, what: str) -> list[str]:
    if values is None:
        values = range(count)
    values = list(values)
    if len(values) != count:
        raise ValueError(f"{len(values)} {what} labels for {count} {what}s")
    return [str(v) for v in values]


def view_csv(matrices: np.ndarray, query_tokens: Sequence[str], key_tokens: Sequence[str] | None = None, *,
             layers: Sequence[Any] | None = None, heads: Sequence[Any] | None = None,
             query_index: Sequence[int] | None = None, key_index: Sequence[int] | None = None,
             max_rows: int | None = None) -> str:
    """Matrices of attention weights as long-format CSV (header ``CSV_HEADER``): ``view_csv_chunks``
    joined."""
    return "".join(view_csv_chunks(matrices, query_tokens, key_tokens, layers=layers, heads=heads,
                                   query_index=query_index, key_index=key_index, max_rows=max_rows))


def view_csv_chunks(matrices: np.ndarray, query_tokens: Sequence[str], key_tokens: Sequence[str] | None = None, *,
                    layers: Sequence[Any] | None = None, heads: Sequence[Any] | None = None,
                    query_index: Sequence[int] | None = None, key_index: Sequence[int] | None = None,
                    max_rows: int | None = None) -> Iterator[str]:
    """Matrices of attention weights as long-format CSV (header ``CSV_HEADER``), in pieces: the header,
    then one piece per query row of each head. Everything is checked before the first piece (a wrong
    shape, more than ``max_rows`` rows: raised here, not half-way through a download).

    ``matrices`` is ``(len(layers), len(heads), queries, keys)``; axes of one entry may be left out,
    e.g. ``(queries, keys)`` for one head with ``layers=[3], heads=[5]``, ``(heads, q, k)`` for one
    layer, ``(layers, q, k)`` for the rollout through each layer with ``heads=["rollout"]``. ``layers``
    and ``heads`` are the labels written (numbers, or ``"mean"`` / ``"rollout"``), default ``0, 1, ...``.
    ``query_index`` / ``key_index`` are the indices written beside the tokens (default: positions
    ``0, 1, ...``). ``max_rows`` refuses (``ExportTooLarge``) an export of more rows.
    """
    matrices = np.asarray(matrices)
    key_tokens = query_tokens if key_tokens is None else key_tokens
    queries, keys = len(query_tokens), len(key_tokens)
    if matrices.ndim < 2 or matrices.shape[-2:] != (queries, keys):
        raise ValueError(f"matrices of shape {matrices.shape} do not end in ({queries} queries, {keys} keys)")
    lead = matrices.shape[:-2]
    count = math.prod(lead)
    if layers is None and heads is None:  # (layers, heads, q, k), (heads, q, k) or (q, k)
        layers = range(lead[0]) if len(lead) == 2 else [0]
    layers = list(layers) if layers is not None else list(range(count // max(1, len(list(heads)))))
    heads = list(heads) if heads is not None else list(range(count // max(1, len(layers))))
    if count != len(layers) * len(heads):
        raise ValueError(f"matrices of shape {matrices.shape} do not hold {len(layers)} layers x {len(heads)} heads")
    rows = len(layers) * len(heads) * queries * keys
    if max_rows is not None and rows > max_rows:
        raise ExportTooLarge(f"This export would have {rows:,} rows, more than the {max_rows:,} allowed here. "
                             "Choose one layer or one head, or use the Python API.")
    matrices = matrices.reshape(len(layers), len(heads), queries, keys)
    layer_names = [quote_csv(name) for name in _labels(layers, len(layers), "layer")]
    head_names = [quote_csv(name) for name in _labels(heads, len(heads), "head")]
    q_index = _labels(query_index, queries, "query")
    k_index = _labels(key_index, keys, "key")
    q_names = [quote_csv(str(t)) for t in query_tokens]
    key_parts = [f"{i},{quote_csv(str(t))}," for i, t in zip(k_index, key_tokens)]

    def pieces() -> Iterator[str]:
        yield ",".join(CSV_HEADER) + "\r\n"
        for li, layer in enumerate(layer_names):
            for hi, head in enumerate(head_names):
                weights = _weight_strings(matrices[li, hi])
                for qi in range(queries):
                    prefix = f"{layer},{head},{q_index[qi]},{q_names[qi]},"
                    yield "".join([prefix + part + w + "\r\n" for part, w in zip(key_parts, weights[qi])])

    return pieces()


COMPARISON_HEADER = CSV_HEADER[:-1] + ("weight_a", "weight_b", "a_minus_b")


def comparison_csv(a: np.ndarray, b: np.ndarray, query_tokens: Sequence[str], key_tokens: Sequence[str], *,
                   layer: Any, head: Any, max_rows: int | None = None) -> str:
    """Two lined-up ``(queries, keys)`` matrices, A and B, as long-format CSV: one row a cell with both
    weights and ``A − B`` (header ``COMPARISON_HEADER``). ``layer`` and ``head`` are the labels written."""
    return "".join(comparison_csv_chunks(a, b, query_tokens, key_tokens, layer=layer, head=head, max_rows=max_rows))


def comparison_csv_chunks(a: np.ndarray, b: np.ndarray, query_tokens: Sequence[str], key_tokens: Sequence[str], *,
                          layer: Any, head: Any, max_rows: int | None = None) -> Iterator[str]:
    """``comparison_csv`` in pieces (the header, then one per query row), checked before the first."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    queries, keys = len(query_tokens), len(key_tokens)
    if a.shape != (queries, keys) or b.shape != a.shape:
        raise ValueError(f"A {a.shape} and B {b.shape} are not both ({queries} queries, {keys} keys)")
    if max_rows is not None and queries * keys > max_rows:
        raise ExportTooLarge(f"This export would have {queries * keys:,} rows, more than the {max_rows:,} allowed.")
    wa, wb, gap = a.astype(str).tolist(), b.astype(str).tolist(), (a - b).astype(str).tolist()
    key_parts = [f"{i},{quote_csv(str(t))}," for i, t in enumerate(key_tokens)]
    layer, head = quote_csv(str(layer)), quote_csv(str(head))

    def pieces() -> Iterator[str]:
        yield ",".join(COMPARISON_HEADER) + "\r\n"
        for qi, token in enumerate(query_tokens):
            prefix = f"{layer},{head},{qi},{quote_csv(str(token))},"
            yield "".join(f"{prefix}{part}{x},{y},{d}\r\n" for part, x, y, d in zip(key_parts, wa[qi], wb[qi], gap[qi]))

    return pieces()


def checked_index(value: Any, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"the {what} must be a whole number or None, not {value!r}")
    if not 0 <= int(value) < size:
        raise IndexError(f"the {what} must be between 0 and {size - 1}; {value} is outside")
    return int(value)


def result_csv(result, layer: int | None = None, head: int | None = None, *,
               max_rows: int | None = None) -> str:
    """The raw attention weights of ``result`` (float16, as stored) as long-format CSV: every layer when
    ``layer`` is None, every head when ``head`` is None. Tokens as the tokenizer spells them; indices
    are token positions. At 128 tokens the whole of a 6 x 12 model is 1.2 million rows (~50 MB)."""
    layers = range(result.num_layers) if layer is None else [checked_index(layer, result.num_layers, "layer")]
    heads = range(result.num_heads) if head is None else [checked_index(head, result.num_heads, "head")]
    matrices = result.attentions[np.ix_(list(layers), list(heads))]
    return view_csv(matrices, result.tokens, layers=layers, heads=heads, max_rows=max_rows)
