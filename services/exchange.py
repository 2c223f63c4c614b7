"""Exports of an analysis: the whole ``AttentionResult`` as JSON, and attention weights as CSV.

JSON (``result_to_json`` / ``result_from_json``, also ``result.to_json()`` and
``AttentionResult.from_json(text)``)::

    {
      "format": "attention-explorer-analysis",
      "version": 1,
      "shapes": {"attentions": [6, 12, 13, 13], "special_mask": [13], ...},
      "result": {
        "tokens": ["[CLS]", "the", ...],
        "token_ids": [101, 1996, ...],
        "offsets": [[0, 0], [0, 3], ...],
        "attentions": {"dtype": "<f2", "shape": [6, 12, 13, 13], "data": "<base64>"},
        "special_mask": {"dtype": "|b1", "shape": [13], "data": "<base64>"},
        "model_id": "all-MiniLM-L6-v2", "text": "...", ...
      }
    }

``result`` holds every field of the dataclass, found with ``dataclasses.fields``, so a field added
later travels with no change here. Arrays are ``{"dtype", "shape", "data"}``: ``dtype`` is numpy's
type string (``<f2`` little-endian float16, ``<f4`` float32, ``|b1`` booleans ...), ``data`` the
array's bytes in C order, little-endian, base64-encoded; any language reads them (Python:
``numpy.frombuffer(base64.b64decode(data), dtype).reshape(shape)``). Everything else is plain JSON;
a float that JSON cannot hold is written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
Reading back, the field annotations of ``AttentionResult`` turn lists back into tuples (``offsets``)
and those strings back into floats, so the round trip is exact: same values, same types, same dtypes.
``shapes`` repeats each array's shape for a reader in a hurry (checked, never needed).

CSV (``result_csv``, also ``result.to_csv(layer, head)``; ``view_csv`` for any matrices; ``view_csv_for``
for what a dashboard view shows): long format, one row a (layer, head, query, key), with exactly the
header ``layer,head,query_index,query_token,key_index,key_token,weight``. Tokens are quoted as RFC 4180
says (commas, quotes, line breaks); a weight is written with the fewest digits that read back to the
same value in the array's own dtype (float16 as stored, float32 for transformed views). Lines end
with CRLF, as the csv module writes them.

Nothing here runs a model or imports Dash.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import AttentionExplorerError
from .forward import AttentionResult, check_result

FORMAT = "attention-explorer-analysis"
VERSION = 1
CSV_HEADER = ("layer", "head", "query_index", "query_token", "key_index", "key_token", "weight")
_ARRAY_KEYS = frozenset({"dtype", "shape", "data"})
_ARRAY_KINDS = set("biufc")  # bool, signed, unsigned, float, complex: never object, str or void
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MAX_DEPTH = 32


class ExchangeError(AttentionExplorerError, ValueError):
    """The text is not an analysis this version can read (foreign, corrupt, or from a newer version)."""

    title = "Not an Attention Explorer analysis"


class ExportTooLarge(AttentionExplorerError, ValueError):
    """An export would be larger than the caller allows (``max_rows``)."""

    title = "Too many numbers to export"


# ============================================================================================ JSON


def result_to_json(result: AttentionResult) -> str:
    """``result`` as JSON text (see the module's docstring for the format)."""
    if not dataclasses.is_dataclass(result):
        raise TypeError(f"expected an AttentionResult, got {type(result).__name__}")
    fields = {f.name: _encode(getattr(result, f.name), 0) for f in dataclasses.fields(result)}
    shapes = {name: value["shape"] for name, value in fields.items() if _is_array(value)}
    document = {"format": FORMAT, "version": VERSION, "shapes": shapes, "result": fields}
    return _dumps_document(document)


def result_from_json(text: str | bytes | bytearray, cls: type = AttentionResult) -> AttentionResult:
    """The result ``result_to_json`` wrote. Raises ``ExchangeError`` for anything else (never runs code
    from ``text``: arrays are plain numbers or booleans, checked against their shapes)."""
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
    hints = _field_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.init and field.name in raw:  # fields a newer version added are ignored
            kwargs[field.name] = _decode(raw[field.name], hints.get(field.name, Any), 0, field.name)
    try:
        result = cls(**kwargs)
    except TypeError as exc:  # a field this version needs is missing
        raise ExchangeError(f"The analysis is incomplete: {exc}.") from None
    try:
        check_result(result)
    except ValueError as exc:
        raise ExchangeError(str(exc)) from None
    shapes = document.get("shapes")
    if isinstance(shapes, dict):
        for name, shape in shapes.items():
            value = getattr(result, name, None)
            if isinstance(value, np.ndarray) and list(value.shape) != shape:
                raise ExchangeError(f"The shape of {name} does not match its summary.")
    return result


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


def _is_array(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == _ARRAY_KEYS


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError("value nested too deeply to export")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return _encode_array(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [_encode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only dicts with string keys can be exported")
        if value.keys() == _ARRAY_KEYS:
            raise TypeError("a dict with exactly the keys dtype, shape and data would read back as an array")
        return {k: _encode(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"cannot export a {type(value).__name__}")


def _encode_array(value: np.ndarray | np.generic) -> dict:
    array = np.asarray(value)
    if array.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(f"cannot export an array of {array.dtype}")
    little = array.dtype.newbyteorder("<") if array.dtype.byteorder in ("=", ">") and array.dtype.itemsize > 1 \
        else array.dtype
    array = array.astype(little, order="C", copy=False)
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def _decode_array(raw: dict, name: str) -> np.ndarray:
    try:
        dtype = np.dtype(str(raw["dtype"]))
    except (TypeError, ValueError):
        raise ExchangeError(f"{name}: unknown dtype {raw['dtype']!r}.") from None
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.itemsize == 0 or dtype.shape:
        raise ExchangeError(f"{name}: refused dtype {dtype}.")
    shape = raw["shape"]
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise ExchangeError(f"{name}: the shape must be a list of whole numbers.")
    if not isinstance(raw["data"], str):
        raise ExchangeError(f"{name}: the data must be base64 text.")
    try:
        data = base64.b64decode(raw["data"].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ExchangeError(f"{name}: the data is not base64.") from None
    if math.prod(shape) * dtype.itemsize != len(data):
        raise ExchangeError(f"{name}: {len(data)} bytes do not make an array of shape {shape} and dtype {dtype}.")
    array = np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # a private, writable copy
    if dtype.byteorder not in ("=", "|"):
        array = array.astype(dtype.newbyteorder("="))
    return array


def _decode(raw: Any, hint: Any, depth: int, name: str) -> Any:
    """A JSON value back into Python, shaped by the field's annotation ``hint`` (lists into tuples where
    it says tuple, "NaN" into a float where it says float). Arrays are known by their three keys."""
    if depth > MAX_DEPTH:
        raise ExchangeError(f"{name}: nested too deeply.")
    if raw is None:
        return None
    options = _options(hint)
    if isinstance(raw, dict):
        if _is_array(raw):
            array = _decode_array(raw, name)
            # a numpy scalar was written as a 0-d array: it reads back as the same scalar
            return array[()] if array.ndim == 0 and np.ndarray not in options else array
        value_hint = next((typing.get_args(o)[1] for o in options
                           if typing.get_origin(o) is dict and len(typing.get_args(o)) == 2), Any)
        return {str(k): _decode(v, value_hint, depth + 1, name) for k, v in raw.items()}
    if isinstance(raw, list):
        for option in options:
            origin, args = typing.get_origin(option), typing.get_args(option)
            if option is tuple or origin is tuple:
                if len(args) == 2 and args[1] is Ellipsis:
                    return tuple(_decode(v, args[0], depth + 1, name) for v in raw)
                if args and len(args) != len(raw):
                    raise ExchangeError(f"{name}: expected {len(args)} values, found {len(raw)}.")
                return tuple(_decode(v, args[i] if args else Any, depth + 1, name) for i, v in enumerate(raw))
            if option is list or origin in (list, Sequence):
                item = args[0] if args else Any
                return [_decode(v, item, depth + 1, name) for v in raw]
        return [_decode(v, Any, depth + 1, name) for v in raw]
    if isinstance(raw, str) and raw in _NONFINITE and float in options and str not in options:
        return _NONFINITE[raw]
    return raw


def _options(hint: Any) -> tuple:
    """The types a hint allows: ``X | None`` gives (X, NoneType); ``Any`` gives (Any,)."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return (hint,)


@lru_cache(maxsize=8)
def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: values stay as JSON gives them
        return {}


# ============================================================================================ CSV


def _quote(field: str) -> str:
    """One CSV field as the csv module writes it (QUOTE_MINIMAL): quoted when it holds a comma, a quote
    or a line break, quotes doubled."""
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
    """Matrices of attention weights as long-format CSV (header ``CSV_HEADER``).

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
    layer_names = _labels(layers, len(layers), "layer")
    head_names = _labels(heads, len(heads), "head")
    q_index = _labels(query_index, queries, "query")
    k_index = _labels(key_index, keys, "key")
    q_names = [_quote(str(t)) for t in query_tokens]
    key_parts = [f"{i},{_quote(str(t))}," for i, t in zip(k_index, key_tokens)]
    out = [",".join(CSV_HEADER) + "\r\n"]
    for li, layer in enumerate(layer_names):
        for hi, head in enumerate(head_names):
            weights = _weight_strings(matrices[li, hi])
            for qi in range(queries):
                prefix = f"{layer},{head},{q_index[qi]},{q_names[qi]},"
                out.append("".join([prefix + part + w + "\r\n" for part, w in zip(key_parts, weights[qi])]))
    return "".join(out)


COMPARISON_HEADER = CSV_HEADER[:-1] + ("weight_a", "weight_b", "a_minus_b")


def comparison_csv(a: np.ndarray, b: np.ndarray, query_tokens: Sequence[str], key_tokens: Sequence[str], *,
                   layer: Any, head: Any, max_rows: int | None = None) -> str:
    """Two lined-up ``(queries, keys)`` matrices, A and B, as long-format CSV: one row a cell with both
    weights and ``A − B`` (header ``COMPARISON_HEADER``). ``layer`` and ``head`` are the labels written."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    queries, keys = len(query_tokens), len(key_tokens)
    if a.shape != (queries, keys) or b.shape != a.shape:
        raise ValueError(f"A {a.shape} and B {b.shape} are not both ({queries} queries, {keys} keys)")
    if max_rows is not None and queries * keys > max_rows:
        raise ExportTooLarge(f"This export would have {queries * keys:,} rows, more than the {max_rows:,} allowed.")
    wa, wb, gap = a.astype(str).tolist(), b.astype(str).tolist(), (a - b).astype(str).tolist()
    key_parts = [f"{i},{_quote(str(t))}," for i, t in enumerate(key_tokens)]
    out = [",".join(COMPARISON_HEADER) + "\r\n"]
    for qi, token in enumerate(query_tokens):
        prefix = f"{layer},{head},{qi},{_quote(str(token))},"
        out.append("".join(f"{prefix}{part}{x},{y},{d}\r\n"
                           for part, x, y, d in zip(key_parts, wa[qi], wb[qi], gap[qi])))
    return "".join(out)


def _index(value: Any, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"the {what} must be a whole number or None, not {value!r}")
    if not 0 <= int(value) < size:
        raise IndexError(f"the {what} must be between 0 and {size - 1}; {value} is outside")
    return int(value)


def result_csv(result: AttentionResult, layer: int | None = None, head: int | None = None, *,
               max_rows: int | None = None) -> str:
    """The raw attention weights of ``result`` (float16, as stored) as long-format CSV: every layer when
    ``layer`` is None, every head when ``head`` is None. Tokens as the tokenizer spells them; indices
    are token positions. At 128 tokens the whole of a 6 x 12 model is 1.2 million rows (~50 MB)."""
    layers = range(result.num_layers) if layer is None else [_index(layer, result.num_layers, "layer")]
    heads = range(result.num_heads) if head is None else [_index(head, result.num_heads, "head")]
    matrices = result.attentions[np.ix_(list(layers), list(heads))]
    return view_csv(matrices, result.tokens, layers=layers, heads=heads, max_rows=max_rows)


# ---------------------------------------------------------------------- what a dashboard view shows

VIEW_NAMES = ("grid", "heatmap", "arcs", "overview", "atlas", "focus")


@dataclass(frozen=True)
class ViewNumbers:
    """The numbers behind one view: ``matrices`` ``(len(layers), len(heads), queries, keys)`` and labels."""

    matrices: np.ndarray
    layers: list
    heads: list
    query_tokens: list[str]
    key_tokens: list[str]
    query_index: list[int]
    key_index: list[int]

    def csv(self, max_rows: int | None = None) -> str:
        return view_csv(self.matrices, self.query_tokens, self.key_tokens, layers=self.layers, heads=self.heads,
                        query_index=self.query_index, key_index=self.key_index, max_rows=max_rows)

    @property
    def rows(self) -> int:
        return int(self.matrices.size)


def view_numbers(view, name: str, layer: int = 0, head: int | str | None = "mean",
                 token: int | None = None) -> ViewNumbers:
    """The weights the dashboard's view ``name`` shows for a ``services.views.View`` (its switches: raw
    or rollout, special tokens hidden, sub-words merged), as the view computes them.

    ``head`` is a head number, ``"mean"`` (or None) or ``"all"``; ``token`` the raw token index followed
    by Token focus. Indices written are positions among the tokens (or words) the view shows, and
    the tokens are the view's labels. Per view:

    - ``grid``: every head of ``layer`` (Rollout: the rollout through each layer, head ``"rollout"``);
    - ``heatmap``: one head, the mean of heads (head ``"mean"``), or the rollout through ``layer``;
    - ``arcs``: as ``heatmap``, or every head of ``layer`` when ``head="all"``;
    - ``overview``: every layer and head (raw attention: the rollout has no heads);
    - ``focus``: one query row per layer, heads averaged (or the rollout), for ``token``;
    - ``atlas`` shows head metrics, not weights: use ``atlas_csv``.
    """
    n_layers, n_heads = (int(n) for n in view.kv.attentions.shape[:2])  # of the kind shown (encoder, decoder, cross)
    layer = _index(layer, n_layers, "layer")
    head_kind = "mean" if head is None else head
    if not isinstance(head_kind, str):
        head_kind = _index(head_kind, n_heads, "head")
    elif head_kind not in ("mean", "all"):
        raise ValueError(f"head must be a number, 'mean' or 'all', not {head!r}")
    labels = list(view.labels)
    key_labels = list(getattr(view, "col_labels", labels))
    units = list(range(len(labels)))
    key_units = list(range(len(key_labels)))
    rollout = view.options.rollout

    def numbers(matrices, layers, heads, queries=None, query_index=None) -> ViewNumbers:
        layers, heads = list(layers), list(heads)
        matrices = np.asarray(matrices)
        matrices = matrices.reshape((len(layers), len(heads)) + matrices.shape[-2:])
        return ViewNumbers(matrices, layers, heads,
                           labels if queries is None else queries, key_labels,
                           units if query_index is None else query_index, key_units)

    if name == "grid":
        if rollout:
            return numbers(view.rollout_layers(), range(n_layers), ["rollout"])
        return numbers(view.layer(layer)[None], [layer], range(n_heads))
    if name in ("heatmap", "arcs"):
        if name == "arcs" and head_kind == "all" and not rollout:
            return numbers(view.layer(layer)[None], [layer], range(n_heads))
        number = head_kind if isinstance(head_kind, int) else None
        matrix, _ = view.matrix(layer, number)
        label = "rollout" if rollout else (number if number is not None else "mean")
        return numbers(matrix[None, None], [layer], [label])
    if name == "overview":
        plain = view.without_rollout()
        return numbers(plain.all_layers(), range(n_layers), range(n_heads))
    if name == "focus":
        unit = view.unit_of(token) if token is not None else None
        if unit is None:
            raise ValueError("Token focus needs a token the view shows (it may be hidden by a switch).")
        looks, _ = view.focus(unit)
        return numbers(looks[:, None, None, :], range(n_layers), ["rollout" if rollout else "mean"],
                       queries=[labels[unit]], query_index=[unit])
    if name == "atlas":
        raise ValueError("The head atlas shows head metrics, not attention weights: use atlas_csv.")
    raise ValueError(f"unknown view {name!r}; one of {', '.join(VIEW_NAMES)}")


def view_csv_for(view, name: str, layer: int = 0, head: int | str | None = "mean", token: int | None = None,
                 *, max_rows: int | None = None) -> str:
    """The CSV of the numbers behind view ``name`` (see ``view_numbers``)."""
    return view_numbers(view, name, layer, head, token).csv(max_rows=max_rows)


def atlas_csv(metrics: dict[str, np.ndarray], labels: np.ndarray) -> str:
    """The head atlas as CSV: ``layer,head,type,<metric>...``, one row a head, metrics as computed
    (``services.heads.head_metrics`` and ``head_labels``)."""
    labels = np.asarray(labels)
    names = list(metrics)
    out = [",".join(["layer", "head", "type", *(_quote(n) for n in names)]) + "\r\n"]
    columns = {n: np.asarray(metrics[n]).astype(str) for n in names}
    for layer in range(labels.shape[0]):
        for head in range(labels.shape[1]):
            values = [columns[n][layer, head] for n in names]
            out.append(",".join([str(layer), str(head), _quote(str(labels[layer, head])), *values]) + "\r\n")
    return "".join(out)
