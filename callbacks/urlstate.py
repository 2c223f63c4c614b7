"""The URL is the state: the page's query string, parsed (and written, by assets/26-url.js
``writeUrl``) with these names, which are a contract:

==============  ==============================================================================
parameter       meaning
==============  ==============================================================================
text, pair      the text analysed and its optional second sentence
id              a short server-side id instead of ``text``/``pair`` for long texts
model           the model (an id the server offers)
layer           a layer number
head            a head number, ``all`` or ``mean``
view            ``grid``, ``heatmap``, ``arcs``, ``overview``, ``atlas``, ``focus``, ``inside``,
                ``generation``, ``compare``
mode            ``raw``, ``rollout`` or ``value`` (weighted by value norm)
hide_special    ``0`` or ``1``
merge           ``0`` or ``1``
drop_first      ``0`` or ``1``: the first token left out, every row renormalised (attention sinks)
pool            ``max`` (default) or ``mean``: how a long text's pooled pictures summarise a block
token           the index of the token followed (Token focus, Inside a head)
target          the target text given to an encoder-decoder model (none: the model writes one)
continue        tokens a decoder-only model writes after the text (``0``: none)
kind            ``encoder``, ``decoder`` or ``cross`` (encoder-decoder models)
filter          a sentence-pair filter: ``AA``, ``AB``, ``BA`` or ``BB`` (``A→B`` is read too)
step            the generated token shown in Generation, from 1
compare         text B of the Compare tab (``view=compare``)
compare_model   model B of the Compare tab (none: A's model)
lang            the interface language
==============  ==============================================================================

Parsing is part of the one boundary for browser values: the query string is bounded, only the
first value of each known name is read, and every value goes through ``boundary`` afterwards; unknown,
malformed or out-of-range values fall back to the defaults, never to an error page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ..components.i18n import N_
from . import boundary, registry

VIEWS = {spec.name: spec.tab for spec in registry.VIEWS}  # view=... -> tab id (registry: one declaration a view)
MAX_SEARCH = 40_000  # characters of query string read at all (a text over ~1,500 is shared by id)
NAMES = ("text", "pair", "id", "model", "layer", "head", "view", "mode", "hide_special", "merge", "drop_first", "pool",
         "token", "lang",
         "target", "continue", "kind", "filter", "step", "compare", "compare_model")
FILTERS = {"AA": "A→A", "AB": "A→B", "BA": "B→A", "BB": "B→B"}


@dataclass(frozen=True)
class UrlState:
    """What a URL asks for. ``analysis`` is None when it names no text (then the page's own is kept)."""

    text: str | None = None
    pair: str | None = None
    share_id: str | None = None
    model: str | None = None
    controls: dict = field(default_factory=dict)  # raw values by router input name, for ViewState.parse
    lang: str | None = None
    target: str | None = None
    steps: int | None = None  # "continue": tokens a decoder-only model writes
    compare: str | None = None  # text B of the Compare tab
    compare_model: str | None = None

    @property
    def names_text(self) -> bool:
        return self.text is not None or self.share_id is not None

    @property
    def empty(self) -> bool:
        return not (self.names_text or self.model or self.controls or self.lang)


def _flag(value: str | None) -> bool | None:
    return {"1": True, "0": False, "true": True, "false": False}.get((value or "").strip().lower())


def parse(search: object) -> UrlState:
    """The state a query string (``?text=...&layer=3``, from ``dcc.Location.search``) asks for."""
    if not isinstance(search, str) or not search.strip("?") or len(search) > MAX_SEARCH:
        return UrlState()
    try:
        raw = parse_qs(search.lstrip("?"), keep_blank_values=False, max_num_fields=64)
    except ValueError:  # more fields than that: junk
        return UrlState()
    first = {name: values[0] for name, values in raw.items() if name in NAMES and values}
    controls: dict = {}
    if "layer" in first:
        controls["layer"] = first["layer"]
    if "head" in first:
        controls["head"] = first["head"]
    if first.get("view") in VIEWS:
        controls["tab"] = VIEWS[first["view"]]
    if first.get("mode") in boundary.MODES:
        controls["mode"] = first["mode"]
    hide, merge = _flag(first.get("hide_special")), _flag(first.get("merge"))
    drop_first, pool = _flag(first.get("drop_first")), (first.get("pool") or "").strip().lower()
    mean = {"mean": True, "max": False}.get(pool)
    if hide is not None or merge is not None or drop_first is not None or mean is not None:
        controls["switches"] = [name for name, on in (("hide", hide), ("merge", merge), ("first", drop_first),
                                                      ("mean", mean)) if on]
    if "token" in first:
        controls["token"] = first["token"]
    if first.get("kind") in boundary.KINDS:
        controls["kind"] = first["kind"]
    pair_filter = (first.get("filter") or "").upper().replace("→", "").replace("->", "")
    if pair_filter in FILTERS:
        controls["pair"] = controls["pair_filter"] = FILTERS[pair_filter]
    if "step" in first:
        controls["step"] = first["step"]
    try:
        text = boundary.text(first.get("text"))
        pair = boundary.text(first.get("pair"), N_("second sentence"))
        target = boundary.text(first.get("target"), N_("target"))
        compare = boundary.text(first.get("compare"), N_("text B"))
    except boundary.TextRefused:
        text = pair = target = compare = None
    steps = boundary.whole(first.get("continue"), 0, boundary.MAX_NEW_TOKENS, 0) if "continue" in first else None
    share_id = first.get("id") if isinstance(first.get("id"), str) and len(first["id"]) <= 32 else None
    lang = first.get("lang") if isinstance(first.get("lang"), str) and len(first["lang"]) <= 16 else None
    return UrlState(text=text, pair=pair or None, share_id=share_id, model=boundary.model_id(first.get("model")),
                    controls=controls, lang=lang, target=target or None, steps=steps or None,
                    compare=(compare or "").strip() or None, compare_model=boundary.model_id(first.get("compare_model")))
