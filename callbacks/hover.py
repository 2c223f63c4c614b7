"""Exact hover values (issue 18): ``GET exact/<what>?key=…&layer=…&head=…&mode=…&switches=…&kind=…&pair=…``.

A short text's grid and heatmap are palette pictures (1/254 of the colour scale); their hover shows the
weight the model computed instead. The page asks this plain Flask route (like ``download/<kind>``,
callbacks/exports.py) for ONE map, on the first hover over it (never on a layer or head change, so those
stay as fast as before), keeps the last few maps (assets/21-hover.js, ``exactMap``), and the tooltip reads
the cell from there:

- ``exact/head``: the matrix one head (or the mean of the heads) shows, ``(rows, columns)``, the view's
  mode and switches applied by the code that draws it (``View.exact_matrix``: ``matrix``, read from
  float32 maps); cells a pair filter leaves out are NaN (the hover says "left out");
- ``exact/overview``: one layer's row of the overview, ``(heads, cells, cells)``: each cell as the picture
  pools it (``layer_picture``, which the overview draws a long text's picture with).

The answer is the float32 values, little-endian, row by row (``application/octet-stream``), their shape
in ``X-Shape`` ("rows,columns" or "heads,rows,columns"). Every value is parsed once, strictly
(``boundary.ExactRequest``: nothing is clamped, so the hover never reads another map than the one drawn);
answers are bounded (``MAX_CELLS``) and counted per person (``RATE_LIMIT``, ``services.web.ratelimit``).
Junk gets a plain message and a 4xx: 400 malformed, 404 no such analysis (any more), 413 too large, 422 a
layer, head, kind or mode the analysis lacks, 429 too many.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from dash import Dash
from flask import Response, request

from ..components.analysis_figures import OVERVIEW_CELLS
from ..components.figures import max_pool
from ..components.i18n import _, translate
from ..components.pooled import block_for
from ..services import AttentionExplorerError, get_settings
from ..services.analyses.kinds import PAIR_FILTERS, attention_of, kinds_available
from ..services.analyses.views import View, ViewOptions
from ..services.extraction import result_by_key
from ..services.result import as_float32
from ..services.web import ratelimit
from .boundary import BadExactRequest, ExactRequest
from .common import EXPIRED, Refused, message_for, plain_response

log = logging.getLogger(__name__)

ROUTE = "exact/"  # under the app's path prefix: exact/head, exact/overview
MAX_CELLS = 1 << 21  # floats in one answer (8 MB): a 1,448-token map; longer texts hover exactly already
RATE_LIMIT = "600/minute"  # maps per person: a page asks one per map first hovered (it keeps the last few)
SCOPE = "exact-hover"


def source(view, state) -> dict:
    """What a figure's hover sends to this route (``layout.meta.src``), for the map it draws: the
    analysis, the mode and switches, the kind and pair filter, the layer and head (which the browser
    replaces with the ones it draws when it moves the picture itself: assets/23-gate.js)."""
    o = view.options
    return {"key": view.key, "mode": "rollout" if o.rollout else "value" if o.value_norm else "raw",
            "switches": list(state.switches), "kind": view.kind if view.result.is_encoder_decoder else None,
            "pair": view.pair, "layer": state.layer, "head": state.head.number if state.head.number is not None else "mean"}


def long_block(view) -> int:
    """The tokens a side of a long text's overview cells."""
    return block_for(max(len(view.labels), len(view.col_labels)), OVERVIEW_CELLS)


def layer_picture(view, how: str, layer: int) -> np.ndarray:
    """One layer's row of the overview, ``(heads, cells, cells)`` float32: each cell the exact value the
    picture shows there (a long text's pooled blocks, max or mean; a short text's maps max-pooled to
    ``OVERVIEW_CELLS`` a side, from the float32 weights). What the overview draws (callbacks/overview.py)
    and its hover reads."""
    view = view.without_rollout()
    if view.long:
        return view.pictures(layer, long_block(view), how)
    return as_float32(max_pool(view.exact_layer(layer), OVERVIEW_CELLS)[0])


def values_for(parsed: ExactRequest) -> np.ndarray:
    """The float32 values ``parsed`` asks for; raises ``Refused`` (with the status) when it cannot be."""
    found = result_by_key(parsed.key, before_compute=ratelimit.new_analysis_guard(ratelimit.client_id()))
    if found is None:
        raise Refused(translate(EXPIRED), 404)
    key, result = found
    kinds = kinds_available(result)
    kind = parsed.kind or kinds[0]
    if kind not in kinds:
        raise Refused(_("This analysis has no attention of that kind."), 422)
    layers, heads = attention_of(result, kind).attentions.shape[:2]
    why = parsed.in_range(layers, heads)
    if why:
        raise Refused(why, 422)
    options = ViewOptions(rollout=parsed.mode == "rollout", value_norm=parsed.mode == "value",
                          hide_special="hide" in parsed.switches, merge_words="merge" in parsed.switches,
                          drop_first="first" in parsed.switches)
    view = View(result, options, key, kind=kind, pair=parsed.pair)
    if parsed.pair is not None and view.pair is None:
        raise Refused(_("This analysis has no sentence pair to filter."), 422)
    if view.value_norm_missing:
        raise Refused(_("Weighting by value norm is not available for this model: {reason}")
                      .format(reason=translate(view.value_norm_missing)), 422)
    if view.rollout_missing:
        raise Refused(translate(view.rollout_missing), 422)
    message, params = view.long_missing
    if message:  # the page refuses these switches for a long text: no map for them either
        raise Refused(translate(message).format(**params), 422)
    if parsed.what == "overview":
        return layer_picture(view, "mean" if "mean" in parsed.switches else "max", parsed.layer)
    rows, cols = len(view.labels), len(view.col_labels)
    if rows * cols > MAX_CELLS:
        raise Refused(_("This map is too large to send whole ({rows} × {cols}).").format(rows=rows, cols=cols), 413)
    values = np.asarray(view.exact_matrix(parsed.layer, parsed.head), dtype=np.float32)
    if view.pair:  # the cells the filter leaves out: blank, not zero (the hover says so)
        query_segment, key_segment = PAIR_FILTERS[view.pair]
        keep_rows = np.array([s == query_segment for s in view.rows.segments], dtype=bool)
        keep_cols = np.array([s == key_segment for s in view.cols.segments], dtype=bool)
        values = np.where(keep_rows[:, None] & keep_cols[None, :], values, np.nan).astype(np.float32)
    return values


def serve(what: Any, args: Any) -> Response:
    """The route's answer: the values, or a plain message with a 4xx (never a traceback)."""
    try:
        parsed = ExactRequest.parse(what, args)
        wait = ratelimit.check(RATE_LIMIT, SCOPE, ratelimit.client_id(), ratelimit.storage_uri(get_settings()))
        if wait:
            raise Refused(_("Too many requests from you: wait {seconds} s and try again.").format(seconds=wait),
                          429, wait)
        values = values_for(parsed)
    except BadExactRequest as why:
        return plain_response(str(why), 400)
    except Refused as why:
        return plain_response(str(why), why.status, why.retry_after)
    except AttentionExplorerError as exc:
        return plain_response(message_for(exc), 422)
    except Exception as exc:  # noqa: BLE001 - never a traceback; a failure of ours, logged by message_for
        return plain_response(message_for(exc), 500)
    response = Response(np.ascontiguousarray(values, dtype="<f4").tobytes(), mimetype="application/octet-stream")
    response.headers["X-Shape"] = ",".join(str(n) for n in values.shape)
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Dash) -> None:
    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE + "<what>", "attention_exact",
                            lambda what: serve(what, request.args), methods=["GET"])
