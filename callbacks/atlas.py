"""Head atlas: per-head metrics on this text, a head type for each, as a map and a sortable table.

The metrics are measured head by head (``services.analyses.heads.stream_head_metrics``: one head's query
rows at a time, never the whole array), with the model's induction scores from its probe
(``services.extraction.induction_scores``). A pass expected to take more than about half a second (long
texts, big models) runs in the background (``services.store.jobs``): the atlas keeps what it showed,
a progress bar counts the heads and Cancel stops the pass between two heads. The measurements are kept
in this process's memory and, as JSON, in the shared cache, so the worker that draws the atlas need not
be the one that measured it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

import numpy as np
from dash import Dash, Input, Output, State, html, no_update

from ..components import ids
from ..components.analysis_figures import atlas_map_figure
from ..components.figures import empty_figure
from ..components.i18n import N_, _, translate
from ..components.layout import ATLAS_METRICS, METRIC_NAMES, atlas_table
from ..services.analyses import heads, kinds
from ..services.analyses.exports import atlas_csv
from ..services.analyses.views import View, ViewOptions
from ..services.extraction import induction_scores
from ..services.store import cache
from ..services.store.jobs import Busy
from ..services.store.memory import memory
from .boundary import ViewState, job_id, view_request_count
from .common import progress_outputs
from .viewspec import ViewSpec

OUTPUTS = {"atlas_map": Output(ids.ATLAS_MAP, "figure"), "atlas_table": Output(ids.ATLAS_TABLE_HOLDER, "children"),
           "atlas_legend": Output(ids.ATLAS_LEGEND, "children"), "atlas_table_for": Output(ids.ATLAS_TABLE_FOR, "data"),
           **progress_outputs("atlas", ids.ATLAS_JOB, ids.ATLAS_POLL, ids.ATLAS_PROGRESS, ids.ATLAS_PROGRESS_TEXT,
                              ids.ATLAS_PROGRESS_BAR, ids.ATLAS_PROGRESS_LABEL),
           "atlas_measuring": Output(ids.ATLAS_MEASURING, "style", allow_duplicate=True)}
# Measured on the attention as stored, or weighted by value norm in that mode; the switches do not apply.

_TITLES = dict(ATLAS_METRICS)
_BOUNDED = {"entropy", "local", "self", "previous", "next", "delimiter", "sink", "induction"}  # 0..1
# Cells (layers x heads x queries x keys) measured while the person waits; more, or maps not held (measured
# head by head from the queries and keys), go to the background with a progress bar. bench/atlas.py: the
# whole-array pass over 6 x 12 heads at 512 tokens (18.9 M cells) takes ~0.3 s on this 2-core machine.
SYNC_CELLS = 1 << 25
HIDDEN, SHOWN, OVER = {"display": "none"}, {"display": "block"}, {"display": "flex"}
MEASURING = N_("Measuring every head of this text: {done} of {total} heads…")
CANCELLED = N_("Measuring was cancelled: the atlas shows what it showed before. Open the tab again or change a "
               "setting to measure again.")
FAILED = N_("The heads could not be measured. Try again; if it persists, tell the admin.")
BUSY = N_("The server is measuring other texts right now. Try again in a minute.")
# A test hook: called before each head's progress is recorded (tests slow or hold the pass with it).
step_hook: Callable[[], None] | None = None


def _job_key(key, window: int, value_norm: bool, kind: str | None) -> tuple:
    return (key, "atlas", window, value_norm, kind)


def atlas_data(result, window: int, key: str | None = None, value_norm: bool = False, kind: str | None = None,
               step: Callable[[int, int], None] | None = None):
    """(metrics, labels, table rows) on one kind of the result's attention (as stored, or weighted by
    value norm); remembered by cache key, window, mode and kind (here and, as JSON, in the shared cache),
    so changing the metric or the selected head does not measure again. For cross-attention only the
    metrics ``kinds.atlas_metrics`` names are measured; the others are NaN (blank in the table)."""
    kind = kind or kinds.default_kind(result)
    found = known(key, window, value_norm, kind)
    if found is not None:
        return found
    measured = _measure(result, window, value_norm, kind, step)
    _keep(key, window, value_norm, kind, measured)
    return measured


def known(key, window: int, value_norm: bool, kind: str | None):
    """The measurements already made for these settings (this process's memory, else the shared cache),
    or None."""
    if key is None:
        return None
    job_key = _job_key(key, window, value_norm, kind)
    found = memory().derived.get(job_key)
    if found is None:
        found = _from_json(cache.read_published(cache.make_key(*job_key)))
        if found is not None:
            memory().derived.put(job_key, found)
    return found


def _keep(key, window: int, value_norm: bool, kind: str | None, measured) -> None:
    if key is None:
        return
    job_key = _job_key(key, window, value_norm, kind)
    memory().derived.put(job_key, measured)
    metrics, labels, _rows = measured
    cache.publish(cache.make_key(*job_key), json.dumps({
        "metrics": {name: [[None if math.isnan(v) else float(v) for v in row] for row in np.asarray(values).tolist()]
                    for name, values in metrics.items()},
        "labels": np.asarray(labels).tolist()}), timeout=24 * 3600)


def _from_json(text: str | None):
    """Measurements read back from the shared cache (untrusted): every known metric, ``(layers, heads)``
    of numbers or null, and a known label a head; else None."""
    try:
        value = json.loads(text) if isinstance(text, str) and len(text) < 4_000_000 else None
        metrics_raw, labels_raw = value["metrics"], value["labels"]
        labels = np.array(labels_raw, dtype=str)
        if labels.ndim != 2 or not set(labels.ravel()) <= set(heads.LABELS) or set(metrics_raw) != set(heads.ALL_METRICS):
            return None
        metrics = {}
        for name in heads.ALL_METRICS:
            rows = metrics_raw[name]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for row in rows for v in row):
                return None
            array = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
            if array.shape != labels.shape:
                return None
            metrics[name] = array
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return metrics, labels, _rows(metrics, labels)


def _rows(metrics: dict, labels: np.ndarray) -> list[dict]:
    rows = heads.metric_table(metrics, labels)
    for row in rows:
        row["id"] = f"{row['layer']}-{row['head']}"
        for name in heads.ALL_METRICS:
            if name in row and row[name] != row[name]:  # NaN: not defined for this kind
                row[name] = None
    return rows


def _measure(result, window: int, value_norm: bool = False, kind: str | None = None,
             step: Callable[[int, int], None] | None = None):
    kind = kind or kinds.default_kind(result)
    if kind == "cross":  # encoder-decoder results hold their (short) maps
        view = View(result, ViewOptions(value_norm=value_norm), kind=kind)
        attentions = view.all_layers() if value_norm else view.kv.attentions
        measured = kinds.rectangular_metrics(attentions, heads.delimiter_mask(view.kv.key_tokens, view.kv.key_special))
        blank = np.full(attentions.shape[:2], np.nan)
        metrics = {name: measured.get(name, blank) for name in heads.ALL_METRICS}
    else:
        decoder = kind == "decoder" and result.is_encoder_decoder
        tokens = result.target_tokens if decoder else result.tokens
        special = result.target_special_mask if decoder else result.special_mask
        maps = result.decoder_attentions if decoder else None
        layers, count = (maps.shape[:2] if decoder else (result.num_layers, result.num_heads))
        norms = kinds.value_norms_for(result, kind)[0] if value_norm else None
        delimiters, causal = heads.delimiter_mask(tokens, special), True if decoder else bool(result.is_causal)
        if norms is None and (decoder or result.dense):  # the maps are held: the whole-array path, layer by layer
            metrics = heads.held_head_metrics(maps if decoder else result.attentions, delimiters, window, causal, step)
        else:  # head by head, computed from the kept queries and keys (or weighted by value norm)
            metrics = heads.stream_head_metrics(heads.head_rows_of(result, kind, norms), int(layers), int(count),
                                                len(tokens), delimiters, window=window, causal=causal, step=step)
        probe = None if result.is_encoder_decoder else induction_scores(result.model_id)
        metrics["induction"] = probe if probe is not None and probe.shape == (layers, count) \
            else np.full((int(layers), int(count)), np.nan)
    labels = heads.head_labels(metrics)
    return metrics, labels, _rows(metrics, labels)


def slow(result, kind: str | None, value_norm: bool = False) -> bool:
    """Whether the metric pass goes to the background: more than ``SYNC_CELLS`` cells, or (square
    attention) maps computed head by head, which costs about 3x the whole-array pass."""
    cells = cells_of(result, kind)
    held = kind == "cross" or result.is_encoder_decoder or (result.dense and not value_norm)
    return cells > (SYNC_CELLS if held else SYNC_CELLS // 3)


def cells_of(result, kind: str | None) -> int:
    """Cells a metric pass reads for ``kind``: what decides whether it runs in the background."""
    if kind == "decoder" and result.is_encoder_decoder:
        return int(np.prod(result.decoder_attentions.shape))
    if kind == "cross":
        return int(np.prod(result.cross_attentions.shape))
    return result.num_layers * result.num_heads * result.seq_len * result.seq_len


def pair_share(view, chunk: int = 256) -> np.ndarray:
    """``(layers, heads)``: for the pair filter on, the share of its queries' attention that goes to
    its keys (e.g. A→B: how much sentence A's tokens look at sentence B), averaged over those queries.
    Read head by head, ``chunk`` query rows at a time (``View.shown_rows``: the switches applied, the
    maps computed from the kept queries and keys for a long text), never the whole array; remembered
    under the result's cache key."""
    query_segment, _key_segment = kinds.PAIR_FILTERS[view.pair]
    view = view.without_rollout()  # the atlas measures heads: rollout has none
    units = np.flatnonzero(np.array([s == query_segment for s in view.rows.segments], dtype=bool))
    layers, count = view.shape[:2]
    o = view.options

    def compute() -> np.ndarray:
        share = np.zeros((layers, count))
        if units.size == 0:
            return share
        for layer in range(layers):
            for head in range(count):
                total = 0.0
                for start in range(0, units.size, chunk):
                    total += float(view.shown_rows(layer, head, units[start:start + chunk]).sum(dtype=np.float64))
                share[layer, head] = total / units.size
        return share

    return memory().derived.get_or_compute(
        (view.key, "pair share", view.kind, view.pair, o.value_norm, o.hide_special, o.merge_words, o.drop_first),
        compute)


def legend(labels) -> list:
    """Each head type found, with how many heads have it and what it means, most common first."""
    names, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [html.Li([html.Strong(_("{type} ({count} heads):").format(type=translate(str(names[i])), count=counts[i]) + " "),
                     translate(heads.LABEL_HELP.get(str(names[i]), ""))])
            for i in order]


def placeholder(message: str) -> dict:
    return {"atlas_map": empty_figure(message), "atlas_table": [], "atlas_legend": [], "atlas_table_for": None,
            **_idle()}


def _idle(text: str = "") -> dict:
    """The progress area put away and the poll stopped (``text``: a line left under the controls)."""
    return {"atlas_job": None, "atlas_poll": True, "atlas_progress": HIDDEN, "atlas_progress_text": text,
            "atlas_progress_bar": 0, "atlas_progress_label": "", "atlas_measuring": HIDDEN}


def _progress(done: int, total: int) -> dict:
    return {"atlas_progress_bar": round(100 * done / total) if total else 0,
            "atlas_progress_label": translate(MEASURING).format(done=done, total=total)}


# A cancelled pass starts again only when the person asks for the atlas anew (not for a head clicked).
_ASKS_AGAIN = frozenset({"handle", "tab", "metric", "window", "mode", "kind", "pair"})


def _in_background(view, state: ViewState, triggered: frozenset[str]) -> dict:
    """Starts (or joins) the metric pass as a job; the atlas keeps what it shows until the pass is done."""
    result, key, window, value_norm, kind = view.result, view.key, state.window, view.options.value_norm, view.kind
    job_key = _job_key(key, window, value_norm, kind)
    jobs = memory().jobs
    last = jobs.last_for(job_key)
    if last is not None and last.state == "cancelled" and not triggered & _ASKS_AGAIN:
        return _idle(translate(CANCELLED))
    total = result.num_layers * result.num_heads if kind != "cross" and not result.is_encoder_decoder else 0

    def work(step: Callable[[int, int], None]) -> None:
        def each(done: int, count: int) -> None:
            if step_hook is not None:
                step_hook()
            step(done, count)

        step(0, total)
        atlas_data(result, window, key, value_norm, kind, step=each)

    try:
        job = jobs.start(job_key, work)
    except Busy:
        return _idle(translate(BUSY))
    return {"atlas_job": {"id": job.id}, "atlas_poll": False, "atlas_progress": SHOWN, "atlas_progress_text": "",
            "atlas_measuring": OVER, **_progress(job.done, job.total or total)}


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    value_norm = view.options.value_norm
    found = known(view.key, state.window, value_norm, view.kind)
    if found is None and view.key is not None and slow(view.result, view.kind, value_norm):
        return _in_background(view, state, triggered)
    metrics, labels, rows = found or atlas_data(view.result, state.window, view.key, value_norm, view.kind)
    selected = (state.layer, state.head.number) if state.head.number is not None else None
    groups = _kv_groups(view)
    if view.pair:
        title = _("share of attention from {pair} (sentence {a}'s tokens looking at sentence {b})").format(
            pair=view.pair, a=view.pair[0], b=view.pair[-1])
        figure = atlas_map_figure(pair_share(view), labels, "pair", title, zmax=1.0, selected=selected,
                                  bar_title=_("share {pair}").format(pair=view.pair))
    elif kinds.metric_reason(state.metric, view.kind):
        figure = empty_figure(_("“{metric}” is not defined for cross-attention: a query (a target token) and a key (a "
                                "source token) are in different texts, so their positions cannot be compared. Pick "
                                "entropy or attention to delimiters.").format(metric=translate(_TITLES[state.metric])))
    elif state.metric == "induction" and np.isnan(metrics["induction"]).all():
        figure = empty_figure(_("The induction score is measured for encoder-only and decoder-only models: an "
                                "encoder-decoder model's decoder reads a target, not the probe."))
    else:
        figure = atlas_map_figure(metrics[state.metric], labels, state.metric, translate(_TITLES[state.metric]),
                                  zmax=1.0 if state.metric in _BOUNDED else None, selected=selected, kv_group=groups,
                                  bar_title=translate(METRIC_NAMES[state.metric]))
    out = {"atlas_map": figure, **_idle()}
    measured = f"{view.key}:{state.window}:{'value' if value_norm else 'raw'}:{view.kind}"
    if state.atlas_table_for != measured:  # the table and legend change only with the measurements
        out.update(atlas_table=atlas_table(rows), atlas_legend=legend(labels), atlas_table_for=measured)
    return out


def _kv_groups(view) -> int:
    """Query heads that share one key/value head (grouped-query attention), 1 without."""
    result = view.result
    if view.kind != "encoder" and view.kind != "decoder" or result.is_encoder_decoder:
        return 1
    return max(1, result.num_heads // max(1, result.num_kv_heads))


def poll(_n_intervals, job, last_request) -> dict:
    """The progress of the job the page follows; when it is done, one view request draws the atlas."""
    found = job_id(job)
    status = memory().jobs.status(found) if found is not None else None
    if status is None:
        return _idle()
    if status["state"] == "running":
        return _progress(status["done"], status["total"])
    if status["state"] == "done":
        return {**_idle(), "request": {"changed": [f"{ids.ATLAS_WINDOW}.value"], "n": view_request_count(last_request) + 1}}
    return _idle(translate(CANCELLED if status["state"] == "cancelled" else FAILED))


def cancel(n_clicks, job) -> dict:
    """Stops the job at its next head; the atlas keeps what it showed."""
    found = job_id(job)
    if not n_clicks or found is None:
        return {name: no_update for name in _PROGRESS_OUTPUTS}
    memory().jobs.cancel(found)
    return {name: value for name, value in _idle(translate(CANCELLED)).items() if name in _PROGRESS_OUTPUTS}


_PROGRESS_OUTPUTS = {"atlas_job": Output(ids.ATLAS_JOB, "data", allow_duplicate=True),
                     "atlas_poll": Output(ids.ATLAS_POLL, "disabled", allow_duplicate=True),
                     "atlas_progress": Output(ids.ATLAS_PROGRESS, "style", allow_duplicate=True),
                     "atlas_progress_text": Output(ids.ATLAS_PROGRESS_TEXT, "children", allow_duplicate=True),
                     "atlas_measuring": Output(ids.ATLAS_MEASURING, "style", allow_duplicate=True)}


def register(app: Dash) -> None:
    """The poll (only while a job runs) and Cancel: small callbacks beside the router."""
    def on_poll(n_intervals, job, last_request):
        out = {name: no_update for name in (*_PROGRESS_OUTPUTS, "atlas_progress_bar", "atlas_progress_label", "request")}
        out.update(poll(n_intervals, job, last_request))
        return out

    app.callback(output={**_PROGRESS_OUTPUTS,
                         "atlas_progress_bar": Output(ids.ATLAS_PROGRESS_BAR, "value", allow_duplicate=True),
                         "atlas_progress_label": Output(ids.ATLAS_PROGRESS_LABEL, "children", allow_duplicate=True),
                         "request": Output(ids.VIEW_REQUEST, "data", allow_duplicate=True)},
                 inputs={"n_intervals": Input(ids.ATLAS_POLL, "n_intervals"), "job": State(ids.ATLAS_JOB, "data"),
                         "last_request": State(ids.VIEW_REQUEST, "data")},
                 prevent_initial_call=True)(on_poll)
    app.callback(output=_PROGRESS_OUTPUTS,
                 inputs={"n_clicks": Input(ids.ATLAS_CANCEL, "n_clicks"), "job": State(ids.ATLAS_JOB, "data")},
                 prevent_initial_call=True)(cancel)


def csv(result, state, view, max_rows: int) -> Iterable[str]:
    """The head atlas: one row a head, its type and every metric (``services.analyses.exports.atlas_csv``)."""
    metrics, labels, _rows = atlas_data(result, state.window, view.key, view.options.value_norm, view.kind)
    return [atlas_csv(metrics, labels)]  # one row a head: small


VIEW = ViewSpec(name="atlas", tab=ids.TAB_ATLAS, outputs=OUTPUTS, main="atlas_map", graph=ids.ATLAS_MAP, depends=frozenset({"handle", "layer", "head", "tab", "metric", "window", "mode", "kind", "pair"}), render=render, placeholder=placeholder, csv=csv, file_head=False, direct=True)
