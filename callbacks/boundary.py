"""The one boundary between the browser and the server: every value a callback receives is parsed here,
once, into typed and bounded values. Pure Python (no Dash), so the rules are tested directly.

Rules, for every field:
- a value of the wrong type, NaN or infinite, missing, or out of range is clamped into range or
  replaced by its default; nothing here raises;
- numbers that size work (a window, top-k, a token index, a layer) are capped by what the analysed
  text and model have, and by fixed maxima, so no client-chosen number makes the server do more
  than a fixed amount of work;
- what was changed is reported in ``notes`` (plain words), for the page to say.

Ranges (``n_layers``, ``n_heads``, ``n_units`` come from the analysis on the server, never from the
browser):

==============  ================================================  =======================
field           accepted                                          otherwise
==============  ================================================  =======================
layer           whole number 0 .. n_layers - 1                    clamped; default 0
head            "all", "mean" or a number 0 .. n_heads - 1        "all"
tab             one of the views' tabs (``registry.TABS``)          the head grid
mode            one of ``MODES``                                  "raw"
switches        a list holding "hide", "merge", "first", "mean"  unknown items dropped
zoom            ``{"key", "view", "x": [a, b], "y": [a, b]}``: a box  none (the whole map)
                zoom of the heatmap, grid or Compare, in tokens
                (``view``: one of ``ZOOM_VIEWS``; Compare's
                ``panel``: "a", "b" or none); clamped to the text
top_k           one of ``TOP_K`` (arcs per token)                 3
arc_start       whole number 0 .. n_tokens - 1                    clamped; default 0
min_weight      a number 0 .. 1                                   clamped; default 0.05
window          one of ``WINDOWS`` (tokens)                       3
metric          one of ``METRICS``                                "entropy"
token           whole number 0 .. n_tokens - 1, or none           none
focus_k         one of ``FOCUS_K``                                3
kind            one of ``KINDS`` the analysis has                 its first kind
pair            one of ``PAIRS`` (the pair filter)                none (all of it)
step            whole number 1 .. n_tokens (a generated token)    clamped; default 1
continue        whole number 0 .. ATTN_MAX_NEW_TOKENS             clamped; default 0
example         whole number 0 .. n_examples - 1                  none
download link   ``DownloadRequest.parse``: a kind of file, a key,   404 (the link names nothing)
                then the fields above as short strings
exact hover     ``ExactRequest.parse``: a key, a layer and head     400 (nothing clamped: the
                as whole numbers, mode, switches, kind, pair      route answers one map or
                from their sets; layer/head checked by the route  a 4xx; callbacks/hover.py)
text, pair,     a string of at most ``MAX_TEXT_CHARS`` characters, refused with a message
target          valid Unicode (no lone surrogate); over the
                configured limit (``cut_to_limit``): cut to it, said
handle          see ``Handle.parse`` (its recipe signed by the server) none (analyse again)
click / hover   Plotly event data with finite numbers             none
==============  ================================================  =======================
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..components import ids
from ..components.i18n import N_, _, translate
from ..components.layout import ATLAS_METRICS, FOCUS_K_CHOICES, PAIR_CHOICES, TOP_K_CHOICES, WINDOW_CHOICES
from ..services.store.recipes import Recipe, unseal
from ..services.config import get_settings
from ..services.validation import cut_text

MODES = ("raw", "rollout", "value")  # value: weighted by value norm (Kobayashi et al., 2020)
SWITCHES = ("hide", "merge", "first", "mean")  # first: the first token left out; mean: pooled cells are means
MAX_ZOOM_VALUE = 1 << 20  # a zoom range end beyond any text (clamped to the text's tokens after)
TOP_K, WINDOWS, FOCUS_K, PAIRS = TOP_K_CHOICES, WINDOW_CHOICES, FOCUS_K_CHOICES, PAIR_CHOICES  # the dropdowns'
METRICS = tuple(name for name, _title in ATLAS_METRICS)
KINDS = ("encoder", "decoder", "cross")
MIN_WEIGHT_MAX = 1.0
MAX_NEW_TOKENS = 512  # a fixed cap on a continuation asked for by URL (the server's own bound applies after)
MAX_TEXT_CHARS = 100_000  # far above any configured limit: anything longer is junk, refused unread
MAX_MODEL_CHARS = 300
MAX_DIM = 4096  # layers, heads or tokens a handle may claim


# ----------------------------------------------------------------------------------- scalars

def _number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None for anything else (bools too)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 32:
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):  # "x"; an int too large for a float
        return None
    return number if math.isfinite(number) else None


def whole(value: Any, low: int, high: int, default: int) -> int:
    """A whole number in ``low..high``: clamped when out of range; ``default`` when not a number
    (or not whole)."""
    number = _number(value)
    if number is None or number != int(number):
        return default
    return int(min(max(int(number), low), high))


def real(value: Any, low: float, high: float, default: float) -> float:
    number = _number(value)
    return default if number is None else float(min(max(number, low), high))


def choice(value: Any, choices: Sequence, default: Any) -> Any:
    """``value`` when it is one of ``choices`` (numbers compared as numbers), else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, str) and value in choices:
        return value
    number = _number(value)
    if number is not None:
        for option in choices:
            if not isinstance(option, str) and float(option) == number:
                return option
    return default


def flags(value: Any, allowed: Iterable[str]) -> frozenset[str]:
    """The allowed strings in a list of strings; anything else is dropped."""
    if not isinstance(value, (list, tuple)):
        return frozenset()
    allowed = set(allowed)
    return frozenset(item for item in value[:16] if isinstance(item, str) and item in allowed)


def optional_index(value: Any, size: int) -> int | None:
    """A whole number in ``0..size-1``, or None (for None, junk or out of range)."""
    number = _number(value)
    if number is None or number != int(number) or not 0 <= number < size:
        return None
    return int(number)


class TextRefused(ValueError):
    """A text field that is not text at all, or absurdly long: refused before any work."""


def text(value: Any, what: str = N_("text")) -> str | None:
    """A text field: a string (possibly empty) or None. Length against the configured limit is the
    services' job; this refuses non-strings, junk so long that reading it is already work, and text
    holding a lone surrogate (half of a character: no answer that quotes it could be sent back)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TextRefused(_("The {what} must be plain text.").format(what=translate(what)))
    if len(value) > MAX_TEXT_CHARS:
        raise TextRefused(_("The {what} is far too long ({count} characters).").format(what=translate(what),
                                                                                        count=f"{len(value):,}"))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as broken:  # a lone surrogate: what a cut emoji leaves in a browser's text box
        raise TextRefused(_("The {what} holds a broken character at position {position} (half of an emoji or "
                            "symbol, cut when it was copied). Delete it and try again.")
                          .format(what=translate(what), position=f"{broken.start + 1:,}")) from None
    return value


def cut_to_limit(value: str | None, what: str, cut: list[dict]) -> str | None:
    """A text (from ``text``) cut to the configured ``ATTN_MAX_CHARS`` at a whole character
    (``services.validation.cut_text``), never refused for that: what was cut, from how many characters,
    is added to ``cut`` for the page to say. Junk (over ``MAX_TEXT_CHARS``) was refused by ``text``."""
    limit = get_settings().char_limit
    if value is None or len(value) <= limit:
        return value
    kept = cut_text(value, limit)
    cut.append({"what": what, "count": len(value), "kept": len(kept), "limit": limit})
    return kept


def model_id(value: Any) -> str | None:
    """The model id as typed (stripped), lone surrogates replaced: no id has them, and a message that
    quotes the id must stay valid Unicode (else the whole answer cannot be serialised)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_MODEL_CHARS:
        return None
    return "".join("\ufffd" if unicodedata.category(ch) == "Cs" else ch for ch in value.strip())


def shown(value: Any, limit: int = 12) -> str:
    """A browser value as a message quotes it: short, printable and valid Unicode. Containers are not
    quoted (their text could be huge or nested past the recursion limit); a lone surrogate would make
    the answer unserialisable, a control or bidi character would garble the message."""
    if isinstance(value, (list, tuple)):
        return "[…]"
    if isinstance(value, Mapping):
        return "{…}"
    if isinstance(value, int) and value.bit_length() > 4000:  # str() refuses ints over 4300 digits
        return "a huge number"
    if isinstance(value, str):
        text = value[:limit]
    elif isinstance(value, (int, float)) or value is None:
        text = str(value)[:limit]
    else:
        return "…"
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cs", "Cc", "Cf")) or "…"


# ----------------------------------------------------------------------------------- heads

@dataclass(frozen=True)
class Head:
    """A head choice: every head of the layer, the mean of the heads, or one head by number."""

    kind: str = "all"  # "all" | "mean" | "one"
    index: int | None = None

    ALL = "all"
    MEAN = "mean"

    @classmethod
    def parse(cls, value: Any, n_heads: int) -> "Head":
        if value == cls.MEAN:
            return cls("mean")
        index = optional_index(value, n_heads)
        if index is not None and not isinstance(value, bool):
            return cls("one", index)
        return cls("all")

    @property
    def number(self) -> int | None:
        """The head's number when one head is chosen, else None."""
        return self.index if self.kind == "one" else None

    @property
    def value(self) -> str:
        """The head selector's value for this choice."""
        return str(self.index) if self.kind == "one" else self.kind


# ----------------------------------------------------------------------------------- the analysis handle

_KEY = re.compile(r"^[a-z0-9-]{1,16}:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Handle:
    """What the page keeps of an analysis: the result's cache key, its shape, and its recipe signed by the
    server (``services.store.recipes``). The attention stays on the server; views fetch it by key, and
    any web process computes it again from the recipe when the shared cache cannot give it. The numbers
    are for the page's controls only: the server always takes the shape from the result itself."""

    key: str
    model_id: str
    layers: int
    heads: int
    tokens: int
    sealed: str | None = None  # the recipe as the page keeps it (signed)
    recipe: Recipe | None = None  # what it holds, its signature checked

    def to_client(self) -> dict:
        client = {"key": self.key, "model": self.model_id, "layers": self.layers, "heads": self.heads,
                  "tokens": self.tokens}
        if self.sealed is not None:
            client["recipe"] = self.sealed
        return client

    @classmethod
    def parse(cls, value: Any) -> "Handle | None":
        """A handle from the page, or None for anything that is not one: a recipe that this server did not
        sign (changed, forged, or signed with another secret) makes the whole handle unreadable. A handle
        without a recipe (a page from before recipes) is read; it is served while the cache has it."""
        if not isinstance(value, Mapping):
            return None
        key, model = value.get("key"), model_id(value.get("model"))
        if not isinstance(key, str) or len(key) > 90 or not _KEY.match(key) or model is None:
            return None
        dims = [optional_index(value.get(name), MAX_DIM + 1) for name in ("layers", "heads", "tokens")]
        if any(d is None or d < 1 for d in dims):
            return None
        sealed = value.get("recipe")
        if sealed is None:
            return cls(key, model, *dims)
        recipe = unseal(sealed)
        if recipe is None:
            return None
        return cls(key, model, *dims, sealed=sealed, recipe=recipe)


# ----------------------------------------------------------------------------------- the view

@dataclass(frozen=True)
class Dims:
    """The shape of the analysis on the server: what the view's numbers are bounded by."""

    layers: int
    heads: int
    tokens: int


ZOOM_VIEWS = ("heatmap", "grid", "compare")  # the figures a box zoom draws exact (the overview opens the heatmap)
ZOOM_PANELS = ("a", "b")  # Compare's panels, when A and B do not line up (each its own tokens)


@dataclass(frozen=True)
class Zoom:
    """A box zoom: the rows ``r0:r1`` and columns ``c0:c1`` on screen (units shown, ends excluded), for the
    analysis ``key``, made on the figure of ``view`` (one of ``ZOOM_VIEWS``: one zoom at a time, the other
    figures show their whole map) and, in Compare when A and B do not line up, on its ``panel`` ("a" or
    "b"; None: every panel). The browser sends token ranges whatever the figure (assets/29-zoom.js turns a
    grid tile's or a pooled panel's cells into tokens). Plotly's axis ranges are cell edges (-0.5 .. n - 0.5)."""

    key: str
    r0: int
    r1: int
    c0: int
    c1: int
    view: str = "heatmap"
    panel: str | None = None

    def of(self, key: str | None, view: str) -> "Zoom | None":
        """This zoom when it was made on ``view`` of the analysis ``key``, else None (the whole map)."""
        return self if self.key == key and self.view == view else None

    def region(self, n_rows: int, n_cols: int) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)`` inside a map of ``n_rows`` x ``n_cols`` units (a zoom is bounded by the longer
        side's tokens: a rectangular map clamps each axis to its own)."""
        r0, c0 = min(self.r0, max(n_rows - 1, 0)), min(self.c0, max(n_cols - 1, 0))
        return r0, max(r0 + 1, min(self.r1, n_rows)), c0, max(c0 + 1, min(self.c1, n_cols))

    @classmethod
    def parse(cls, value: Any, tokens: int) -> "Zoom | None":
        """None for anything that is not a zoom of at least one cell inside ``tokens`` x ``tokens``."""
        if not isinstance(value, Mapping) or not isinstance(value.get("key"), str) or not _KEY.match(value["key"]):
            return None
        view = value.get("view", "heatmap")
        panel = value.get("panel")
        if not isinstance(view, str) or view not in ZOOM_VIEWS or (panel is not None and panel not in ZOOM_PANELS):
            return None
        spans = []
        for axis in ("y", "x"):
            pair = value.get(axis)
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                return None
            ends = [_number(v) for v in pair]
            if any(e is None for e in ends):
                return None
            lo, hi = sorted(min(max(e, -1.0), MAX_ZOOM_VALUE) for e in ends)
            first, end = max(0, math.floor(lo + 0.5)), min(tokens, math.ceil(hi + 0.5))
            if end <= first:
                return None
            spans += [first, end]
        return cls(value["key"], *spans, view=view, panel=panel if view == "compare" else None)


@dataclass(frozen=True)
class ViewState:
    """Everything the open view depends on, typed and in range."""

    tab: str = ids.TAB_GRID
    layer: int = 0
    head: Head = field(default_factory=Head)
    mode: str = "raw"
    hide_special: bool = False
    merge: bool = False
    top_k: int = 3
    min_weight: float = 0.05
    arc_focus: int | None = None  # a raw token index: the token whose arcs are kept
    arc_start: int = 0  # the first unit the arc view draws (long texts are drawn through a window)
    metric: str = "entropy"
    window: int = 3
    token: int | None = None  # a raw token index: the token followed in Token focus
    focus_k: int = 3
    atlas_table_for: str | None = None  # what the atlas table in the page measures (it is sent once)
    kind: str | None = None  # encoder / decoder / cross (None: the result's first kind)
    pair: str | None = None  # a sentence-pair filter, "A→B" (None: all of it)
    drop_first: bool = False  # the first token left out, every row renormalised
    pool: str = "max"  # how a long text's pictures pool a block: "max" or "mean"
    zoom: "Zoom | None" = None  # the part on screen after a box zoom (of the heatmap, grid or Compare)
    step: int = 1  # a generated token, counted from 1 (decoder-only continuations)
    compare: "Handle | None" = None  # analysis B of the Compare tab
    notes: tuple[str, ...] = ()

    @property
    def switches(self) -> list[str]:
        return [name for name, on in (("hide", self.hide_special), ("merge", self.merge),
                                      ("first", self.drop_first), ("mean", self.pool == "mean")) if on]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], dims: Dims, tabs: Sequence[str]) -> "ViewState":
        """``raw`` holds the browser's values by field name (missing ones take their defaults)."""
        notes: list[str] = []
        layer_raw = raw.get("layer")
        layer = whole(layer_raw, 0, dims.layers - 1, 0)
        number = _number(layer_raw)
        if layer_raw is not None and (number is None or number != layer):
            notes.append(_("There is no layer {asked}: showing layer {layer}.").format(asked=shown(layer_raw), layer=layer))
        head_raw = raw.get("head")
        head = Head.parse(head_raw, dims.heads)
        if head_raw not in (None, Head.ALL, Head.MEAN) and head.kind == "all":
            notes.append(_("There is no head {asked} in this model: showing all heads.").format(asked=shown(head_raw)))
        switches = flags(raw.get("switches"), SWITCHES)
        return cls(
            tab=choice(raw.get("tab"), tuple(tabs), ids.TAB_GRID),
            layer=layer,
            head=head,
            mode=choice(raw.get("mode"), MODES, "raw"),
            hide_special="hide" in switches,
            merge="merge" in switches,
            top_k=choice(raw.get("top_k"), TOP_K, 3),
            min_weight=real(raw.get("min_weight"), 0.0, MIN_WEIGHT_MAX, 0.05),
            arc_focus=optional_index(raw.get("arc_focus"), dims.tokens),
            arc_start=whole(raw.get("arc_start"), 0, max(dims.tokens - 1, 0), 0),
            metric=choice(raw.get("metric"), METRICS, "entropy"),
            window=choice(raw.get("window"), WINDOWS, 3),
            token=optional_index(raw.get("token"), dims.tokens),
            focus_k=choice(raw.get("focus_k"), FOCUS_K, 3),
            atlas_table_for=raw.get("atlas_table_for") if isinstance(raw.get("atlas_table_for"), str)
            and len(raw.get("atlas_table_for")) <= 120 else None,
            kind=choice(raw.get("kind"), KINDS, None),
            pair=choice(raw.get("pair"), PAIRS, None),
            drop_first="first" in switches,
            pool="mean" if "mean" in switches else "max",
            zoom=Zoom.parse(raw.get("zoom"), dims.tokens),
            step=whole(raw.get("step"), 1, max(dims.tokens, 1), 1),
            compare=Handle.parse(raw.get("compare_handle")),
            notes=tuple(notes),
        )


def job_id(value: Any) -> str | None:
    """A background job's id as the page keeps it (``{"id": "<32 hex digits>"}`` or the id itself), or
    None for anything else."""
    raw = value.get("id") if isinstance(value, dict) else value
    return raw if isinstance(raw, str) and len(raw) == 32 and re.fullmatch(r"[0-9a-f]{32}", raw) else None


def view_request_count(value: Any) -> int:
    """The ``n`` of the page's last view request (0 when there is none or it is not a small whole number)."""
    n = value.get("n") if isinstance(value, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 else 0


# ----------------------------------------------------------------------------------- download links

DOWNLOAD_KINDS = ("csv", "json", "html")
# What a download link carries of the view: ViewState's fields, by the router's input names.
DOWNLOAD_FIELDS = ("tab", "layer", "head", "mode", "switches", "top_k", "min_weight", "arc_focus", "arc_start",
                   "metric", "window", "token", "focus_k", "kind", "pair", "step")
MAX_QUERY_VALUE = 120  # characters of one query value: longer ones are dropped unread


def analysis_key(value: Any) -> str | None:
    """An analysis's cache key (the handle's ``key``) as given, or None for anything that is not one."""
    return value if isinstance(value, str) and len(value) <= 90 and _KEY.match(value) else None


def _query_values(args: Any, name: str) -> list:
    """The values of ``name`` in a query (werkzeug's MultiDict, or a mapping of lists), at most 16."""
    if hasattr(args, "getlist"):
        found = args.getlist(name)
    else:
        found = args.get(name, []) if isinstance(args, Mapping) else []
        found = found if isinstance(found, (list, tuple)) else [found]
    return list(found[:16])


@dataclass(frozen=True)
class DownloadRequest:
    """A download link's query, parsed: the analysis by key (and Compare's B by key), and the view's
    values by the router's input names, still raw but bounded (short strings only). They go through
    ``ViewState.parse`` with the analysis's own dimensions, like every other browser value."""

    kind: str
    key: str
    compare_key: str | None
    values: Mapping[str, Any]

    @classmethod
    def parse(cls, kind: Any, args: Any) -> "DownloadRequest | None":
        """None when ``kind`` is not a download or the link names no analysis. The first of a repeated
        value wins (as in page addresses); values longer than ``MAX_QUERY_VALUE`` are dropped."""
        if kind not in DOWNLOAD_KINDS:
            return None
        first = lambda name: next(iter(_query_values(args, name)), None)  # noqa: E731
        key = analysis_key(first("key"))
        if key is None:
            return None
        values: dict[str, Any] = {}
        for name in DOWNLOAD_FIELDS:
            if name == "switches":
                values[name] = [v for v in _query_values(args, name) if isinstance(v, str) and len(v) <= 16]
                continue
            value = first(name)
            if isinstance(value, str) and len(value) <= MAX_QUERY_VALUE:
                values[name] = value
        return cls(kind, key, analysis_key(first("compare")), values)


def download_query(key: str, state: ViewState, compare_key: str | None = None) -> list[tuple[str, str]]:
    """The query of a download link for the analysis ``key`` seen as ``state`` (already parsed): what
    ``DownloadRequest.parse`` reads back into the same state. Never a text: keys and view values only."""
    query = [("key", key), ("tab", state.tab), ("layer", str(state.layer)), ("head", state.head.value),
             ("mode", state.mode), *(("switches", name) for name in state.switches), ("top_k", str(state.top_k)),
             ("min_weight", repr(state.min_weight)), ("arc_start", str(state.arc_start)), ("metric", state.metric),
             ("window", str(state.window)), ("focus_k", str(state.focus_k)), ("step", str(state.step))]
    optional = {"arc_focus": state.arc_focus, "token": state.token, "kind": state.kind, "pair": state.pair,
                "compare": compare_key}
    query += [(name, str(value)) for name, value in optional.items() if value is not None]
    return query


# ----------------------------------------------------------------------------------- Plotly events

def point(event: Any, *numeric: str) -> dict | None:
    """The first point of a Plotly click or hover event, with the named fields as finite numbers;
    None when the event is missing, malformed or lacks one of them."""
    if not isinstance(event, Mapping):
        return None
    points = event.get("points")
    if not isinstance(points, list) or not points or not isinstance(points[0], Mapping):
        return None
    first = points[0]
    parsed = {}
    for name in numeric:
        number = _number(first.get(name))
        if number is None:
            return None
        parsed[name] = number
    return parsed


# ----------------------------------------------------------------------------------- exact hover values

EXACT_WHATS = ("head", "overview")  # one shown map (grid tile, heatmap); one layer's row of the overview
_WHOLE = re.compile(r"^[0-9]{1,4}$")


@dataclass(frozen=True)
class DirectRequest:
    """The gate's direct view request (``POST _ae-view``, assets/23-gate.js): the controls' values by input
    name (those it names by ``"id.property"`` and the router knows; each at most ``MAX_VALUE_CHARS`` as
    JSON) and the names of those that changed. The values themselves are parsed by ``ViewState.parse``,
    as any view request's."""

    values: dict
    changed: tuple[str, ...]
    MAX_VALUE_CHARS = 4096  # a control's value, as JSON: handles and switch lists are far shorter

    @classmethod
    def parse(cls, body: Any, names: Mapping[str, str]) -> "DirectRequest":
        """``names``: input name by ``"id.property"``. Raises ``ValueError`` (plain words) for a body that is
        not ``{"values": {...}, "changed": [...]}`` or a value too long."""
        import json

        if not isinstance(body, dict) or not isinstance(body.get("values"), dict) or not isinstance(body.get("changed"), list):
            raise ValueError("expected {values: {...}, changed: [...]}")
        values: dict[str, Any] = {}
        for prop, value in list(body["values"].items())[:64]:
            name = names.get(prop) if isinstance(prop, str) else None
            if name is None:
                continue
            if len(json.dumps(value, default=str)) > cls.MAX_VALUE_CHARS:
                raise ValueError(f"{prop} is too long")
            values[name] = value
        changed = tuple(names[p] for p in body["changed"][:64] if isinstance(p, str) and p in names)
        return cls(values, changed)


class BadExactRequest(ValueError):
    """An exact-values request that names nothing (its message says what was wrong, in plain words)."""


@dataclass(frozen=True)
class ExactRequest:
    """``GET exact/<what>?key=…&layer=…&head=…&mode=…&switches=…&kind=…&pair=…`` parsed: the values the
    hover of a short text's picture asks for, strictly (unlike the controls, nothing is clamped: a value
    out of its set is refused, so the hover never shows a number for another map than the one drawn).
    Layer and head are checked against the analysis by the route (``in_range``)."""

    what: str
    key: str
    layer: int
    head: int | None  # None: the mean of the heads
    mode: str
    switches: frozenset[str]
    kind: str | None
    pair: str | None

    @classmethod
    def parse(cls, what: Any, args: Any) -> "ExactRequest":
        """Raises ``BadExactRequest`` for anything that is not one well-formed request."""
        if what not in EXACT_WHATS:
            raise BadExactRequest(_("There is no such map."))

        def one(name: str, required: bool = False) -> str | None:
            values = _query_values(args, name)
            if len(values) > 1:
                raise BadExactRequest(_("“{name}” is given more than once.").format(name=name))
            value = values[0] if values else None
            if value is not None and (not isinstance(value, str) or len(value) > MAX_QUERY_VALUE):
                raise BadExactRequest(_("“{name}” is not a value this map can have.").format(name=name))
            if required and not value:
                raise BadExactRequest(_("“{name}” is missing.").format(name=name))
            return value or None

        key = analysis_key(one("key", True))
        if key is None:
            raise BadExactRequest(_("“{name}” is not a value this map can have.").format(name="key"))
        layer_raw = one("layer", True)
        if not _WHOLE.match(layer_raw):
            raise BadExactRequest(_("“{name}” is not a value this map can have.").format(name="layer"))
        head_raw = one("head") or Head.MEAN
        if head_raw != Head.MEAN and not _WHOLE.match(head_raw):
            raise BadExactRequest(_("“{name}” is not a value this map can have.").format(name="head"))
        mode = one("mode") or "raw"
        kind, pair = one("kind"), one("pair")
        switches = _query_values(args, "switches")
        if (mode not in MODES or (kind is not None and kind not in KINDS) or (pair is not None and pair not in PAIRS)
                or len(switches) > len(SWITCHES) or any(s not in SWITCHES for s in switches)):
            raise BadExactRequest(_("The view's mode, switches, kind or pair filter is not one the page has."))
        return cls(what, key, int(layer_raw), None if head_raw == Head.MEAN else int(head_raw), mode,
                   frozenset(switches), kind, pair)

    def in_range(self, layers: int, heads: int) -> str:
        """Why this request's layer or head is not in an analysis of ``layers`` x ``heads`` ("" when it is)."""
        if self.layer >= layers:
            return _("There is no layer {asked}: this analysis has layers 0 to {last}.").format(
                asked=self.layer, last=layers - 1)
        if self.head is not None and self.head >= heads:
            return _("There is no head {asked}: this analysis has heads 0 to {last}.").format(
                asked=self.head, last=heads - 1)
        return ""
