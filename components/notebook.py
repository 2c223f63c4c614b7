"""Figures for notebooks (issue 11): an ``AttentionResult`` in, a ``plotly.graph_objects.Figure`` out.

    from services import extract_attention                 # installed: from attention_explorer import ...
    from components.notebook import head_grid, head_heatmap, arcs, overview, atlas, token_focus, inside

    r = extract_attention("The cat sat on the mat because it was tired.")
    head_grid(r, layer=2).show()                            # renders inline in Jupyter
    head_heatmap(r, layer=2, head=5, hide_special=True)
    token_focus(r, "it", mode="rollout")
    show_dashboard()                                        # the whole dashboard in the cell

Every function draws what the dashboard's view of the same name draws (the same builders and the
same switches: ``mode`` "raw" or "rollout", ``hide_special``, ``merge`` sub-words), with hover text
computed in Python (``components.export.offline_figure``), since a notebook has none of the app's
browser code. Services are imported inside the functions: importing this module loads no model.
"""

from __future__ import annotations

import socket
from typing import Any

from .analysis_figures import atlas_map_figure, focus_figure, inside_head_figure, overview_figure
from .export import offline_figure
from .figures import arc_figure, empty_figure, head_grid_figure, heatmap_figure
from .i18n import translate

MODES = ("raw", "rollout")
# The notebook servers allowed to frame the dashboard that show_dashboard() starts (CSP frame-ancestors).
NOTEBOOK_FRAME_ANCESTORS = ("'self'", "http://localhost:*", "http://127.0.0.1:*", "https://localhost:*",
                            "https://127.0.0.1:*", "vscode-webview:")
_BOUNDED_METRICS = {"entropy", "local", "self", "previous", "next", "delimiter"}  # 0..1: one scale for all


def _go(figure: dict):
    import plotly.graph_objects as go

    return go.Figure(offline_figure(figure))


def message_figure(message: str):
    """A blank figure that says ``message`` (e.g. why a view cannot be drawn)."""
    return _go(empty_figure(message))


def _view(result, mode: str = "raw", hide_special: bool = False, merge: bool = False):
    from ..services.analyses.views import View, ViewOptions

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return View(result, ViewOptions(rollout=mode == "rollout", hide_special=bool(hide_special),
                                    merge_words=bool(merge)))


def _index(value: Any, size: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"the {what} must be a whole number, not {value!r}")
    if not 0 <= value < size:
        raise IndexError(f"the {what} must be between 0 and {size - 1}; {value} is outside")
    return value


def _head(head: Any, heads: int) -> int | None:
    """A head number, or None for the mean of heads ("mean" or None)."""
    if head is None or head == "mean":
        return None
    return _index(head, heads, "head")


def token_index(result, token: int | str) -> int:
    """The raw index of ``token``: an index as it is, or the first token that reads as ``token`` (case
    and sub-word markers ignored, special tokens skipped), e.g. ``token_index(r, "it")``."""
    if not isinstance(token, str):
        return _index(token, result.seq_len, "token")
    from ..services.analyses.tokens import display_token

    wanted = token.strip().lower()
    for i, (raw, special) in enumerate(zip(result.tokens, result.special_mask)):
        if not special and display_token(raw).strip().lower() == wanted:
            return i
    raise ValueError(f"no token reads {token!r}; the tokens are {[display_token(t) for t in result.tokens]}")


def head_grid(result, layer: int = 0, *, mode: str = "raw", hide_special: bool = False, merge: bool = False,
              selected: int | None = None):
    """Every head of ``layer`` as a small heatmap, on one 0-1 scale (Rollout: the rollout through each layer)."""
    view = _view(result, mode, hide_special, merge)
    layer = _index(layer, result.num_layers, "layer")
    note = view.options.note or None
    if view.options.rollout:
        return _go(head_grid_figure(view.rollout_layers(), view.labels, layer, selected=layer, tile="layer",
                                    note=note, title=f"Rollout through each of the {result.num_layers} layers "
                                                     "(heads averaged)"))
    maps = result.attentions[layer] if view.is_raw else view.layer(layer)
    return _go(head_grid_figure(maps, view.labels, layer, selected=selected, note=note,
                                title=f"Layer {layer} · all {result.num_heads} heads"))


def head_heatmap(result, layer: int = 0, head: int | str | None = 0, *, mode: str = "raw",
                 hide_special: bool = False, merge: bool = False):
    """One head in full (``head`` a number), the mean of heads (``"mean"``), or the rollout through
    ``layer`` (``mode="rollout"``): keys on x, queries on y."""
    view = _view(result, mode, hide_special, merge)
    layer = _index(layer, result.num_layers, "layer")
    matrix, title = view.matrix(layer, _head(head, result.num_heads))
    notes = [view.options.note] if view.options.note else []
    if result.is_causal:
        notes.append("causal: the upper triangle is empty because tokens cannot see later ones")
    return _go(heatmap_figure(matrix, view.labels, title, note=" · ".join(notes) or None,
                              token_index=view.token_index))


def arcs(result, layer: int = 0, head: int | str | None = "all", *, mode: str = "raw", hide_special: bool = False,
         merge: bool = False, top_k: int = 3, min_weight: float = 0.05, token: int | str | None = None,
         start: int = 0):
    """Tokens in reading order with arcs to the keys each attends to most (``top_k`` of weight >=
    ``min_weight``): every head in its colour (``head="all"``), one head, or the mean; ``token`` keeps
    one token's arcs. Texts longer than 64 tokens are drawn from ``start``."""
    view = _view(result, mode, hide_special, merge)
    layer = _index(layer, result.num_layers, "layer")
    names = None
    if not view.options.rollout and head == "all":
        weights, names = view.layer(layer), [str(h) for h in range(result.num_heads)]
        what = f"Layer {layer} · all heads (one colour a head)"
    else:
        matrix, what = view.matrix(layer, None if head == "all" else _head(head, result.num_heads))
        weights = matrix[None]
    focus = view.unit_of(token_index(result, token)) if token is not None else None
    from .figures import note_span

    return _go(arc_figure(weights, view.labels, top_k=int(top_k), min_weight=float(min_weight), focus=focus,
                          group_names=names, causal=result.is_causal, title=what + note_span(view.options.note),
                          token_index=view.token_index, start=int(start)))


def overview(result, *, hide_special: bool = False, merge: bool = False, selected: tuple[int, int] | None = None):
    """Every layer x head map at once (rows: layers, columns: heads)."""
    view = _view(result, "raw", hide_special, merge)
    maps = result.attentions if view.is_raw else view.all_layers()
    return _go(overview_figure(maps, selected=selected, note=view.options.note))


def atlas(result, metric: str = "entropy", *, window: int = 3, selected: tuple[int, int] | None = None):
    """A layers x heads map of one head metric (``services.heads.METRICS``), each head named by its type."""
    from ..services.analyses import heads

    if metric not in heads.METRICS:
        raise ValueError(f"metric must be one of {', '.join(heads.METRICS)}, not {metric!r}")
    metrics = heads.head_metrics(result.attentions, heads.delimiter_mask(result.tokens, result.special_mask),
                                 window=int(window), causal=result.is_causal)
    labels = heads.head_labels(metrics)
    from .layout import METRIC_NAMES

    titles = dict(_metric_titles())
    return _go(atlas_map_figure(metrics[metric], labels, metric, titles.get(metric, metric),
                                zmax=1.0 if metric in _BOUNDED_METRICS else None, selected=selected,
                                bar_title=translate(METRIC_NAMES[metric]) if metric in METRIC_NAMES else None))


def _metric_titles() -> list[tuple[str, str]]:
    from .layout import ATLAS_METRICS

    return list(ATLAS_METRICS)


def token_focus(result, token: int | str = "it", *, mode: str = "raw", hide_special: bool = False,
                merge: bool = False):
    """Where one token (an index, or its text: ``"it"``) looks in each layer, heads averaged (Rollout:
    the rollout through each layer)."""
    view = _view(result, mode, hide_special, merge)
    unit = view.unit_of(token_index(result, token))
    if unit is None:
        return message_figure("That token is hidden by “hide special tokens”: pick another.")
    looks, _ = view.focus(unit)
    return _go(focus_figure(looks, view.labels, view.labels[unit], note=view.options.note))


def inside(result, layer: int = 0, head: int = 0, query: int | str = 0):
    """Inside one head, for one query token: the scores q·k × scale and the softmax weights, with the
    value norms' effect (``services.inside``). The model is loaded (and run once more over the text) as
    ``inside_head`` does; a model it cannot take apart, or cannot load, gives a figure saying why."""
    from ..services.errors import AttentionExplorerError
    from ..services.extraction import cache_key
    from ..services.inside import inside_head_for

    layer = _index(layer, result.num_layers, "layer")
    head = _index(head, result.num_heads, "head")
    query = token_index(result, query)
    try:
        h = inside_head_for(cache_key(result.model_id, result.text, result.text_pair), result, layer, head, query)
    except AttentionExplorerError as exc:
        return message_figure(f"Inside a head is not available: {exc}")
    from ..services.analyses.tokens import display_token

    labels = [display_token(t) for t in result.tokens]
    if not h.available:
        return message_figure(f"Inside layer {layer} · head {head}: {h.reason}")
    title = (f"Layer {layer} · head {head}: where “{labels[query]}” looks, step by step "
             f"(d_head = {h.d_head}, scale {h.scale:.3g})")
    return _go(inside_head_figure(labels, query, h.scores, h.weights, h.weighted, h.masked, title=title,
                                  scale=h.scale))


# ------------------------------------------------------------------------------------------ the dashboard


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where Dash can show an app in a cell)."""
    from dash import jupyter_dash

    return bool(jupyter_dash.active)


def show_dashboard(port: int | None = None, height: int = 900, *, host: str = "127.0.0.1", width: str = "100%",
                   settings=None, frame_ancestors: tuple[str, ...] = NOTEBOOK_FRAME_ANCESTORS) -> str:
    """Serves the whole dashboard from this kernel (in a thread) and shows it in the cell, with Dash's
    ``jupyter_mode="inline"``. Returns its URL. ``port`` None takes a free one; ``settings`` default to
    the process's (``services.configure``); ``frame_ancestors`` are the pages allowed to frame it (the
    local notebook servers and VS Code; add your JupyterHub's address if it is elsewhere).

    Outside Jupyter it raises ``RuntimeError`` (it would block the Python session): run
    ``attention-explorer`` (or ``python app.py``) instead.
    """
    if not in_notebook():
        raise RuntimeError("show_dashboard() shows the dashboard in a Jupyter notebook cell, and this is not a "
                           "Jupyter kernel. Outside a notebook, run `attention-explorer --port 8050` (or "
                           "`python app.py` in a checkout) and open http://127.0.0.1:8050.")
    from ..services.config import get_settings

    chosen = (settings or get_settings()).replace(frame_ancestors=tuple(frame_ancestors))
    from ..app import create_app

    port = int(port) if port else _free_port(host)
    app = create_app(chosen)
    app.run(jupyter_mode="inline", jupyter_height=int(height), jupyter_width=width, host=host, port=port,
            debug=False)
    return f"http://{host}:{port}/"
