"""The page: ``create_layout(settings)`` and its pieces. Built per page load, never at import."""

from __future__ import annotations

import json

import dash_bootstrap_components as dbc
from dash import dcc, html

from . import ids
from .figures import empty_figure
from .i18n import LANGUAGES, N_, _, current_language, translate
from .tour import tour_components

# Each example opens the view it is about (issue 19): ``view`` is a tab, ``token`` the word Token focus
# follows (when the model has it as a token), ``pair_filter`` a sentence pair's block.
EXAMPLES = (
    {"label": N_("Pronoun: what is “it”?"), "text": "The cat sat on the mat because it was tired.", "pair": "",
     "view": ids.TAB_FOCUS, "token": "it"},
    # where sentence B's tokens look in sentence A: does "It" find "cat"?
    {"label": N_("Sentence pair"), "text": "The cat sat on the mat.", "pair": "It was tired, so it fell asleep.",
     "view": ids.TAB_HEATMAP, "pair_filter": "B→A"},
    {"label": N_("Chinese: what is 它?"), "text": "猫坐在垫子上因为它累了。", "pair": "", "view": ids.TAB_FOCUS,
     "token": "它"},
    # "are" agrees with "keys", six words back
    {"label": N_("Long-range agreement"), "text": "The keys that the man left on the kitchen table are missing.",
     "pair": "", "view": ids.TAB_FOCUS, "token": "are"},
    # Compare (issue 11): the classic Winograd pair; opens the Compare tab on where "it" looks
    {"label": N_("Compare: too big / too small"), "text": "The trophy doesn't fit into the suitcase because it is too big.",
     "pair": "", "compare": "The trophy doesn't fit into the suitcase because it is too small.", "view": ids.TAB_COMPARE},
)
DEFAULT_TEXT = EXAMPLES[0]["text"]

HELP = {
    ids.TAB_GRID: N_("Each small square is one attention head of the chosen layer. Rows are the tokens that "
                   "are looking (queries), columns the tokens they look at (keys); brighter means more "
                   "attention. Click a square to open that head."),
    ids.TAB_HEATMAP: N_("One head (or the mean of all heads) in full: each row shows how one token spreads "
                      "its attention over the sentence, and sums to 1. Hover a cell for the exact weight; click "
                      "a row to see, inside the head, where that token's weights come from."),
    ids.TAB_ARCS: N_("Arcs join each token to the tokens it attends to most; thicker, darker arcs carry more "
                   "weight. Hover a token to see only its arcs, click it to keep them, click again to release."),
    ids.TAB_OVERVIEW: N_("Every head of every layer at once: rows are layers, columns heads, each square a small "
                       "attention map like those in the head grid. Look for repeated shapes (diagonals, bright "
                       "columns) to spot families of heads. Click a square to open that head."),
    ids.TAB_ATLAS: N_("What kind of pattern each head has on this text, measured: how spread out its attention "
                    "is (entropy), how far it looks, and how much goes to the token itself, the previous or next "
                    "token, or to delimiters such as [CLS], [SEP] and punctuation. Each head gets a type from "
                    "these numbers. Click a square or a table row to open that head."),
    ids.TAB_FOCUS: N_("Follow one token through the model: for each layer, the tokens it attends to most (all "
                    "heads averaged), and the tokens that attend to it. Pick the token below, or click it in "
                    "the arc view."),
    ids.TAB_GENERATION: N_("The text the model wrote, one token at a time: at each step, where the new token looks, "
                           "in the prompt and in what was written before it, for every head of the chosen layer "
                           "and, heads averaged, for every layer. Generated tokens are marked."),
    ids.TAB_COMPARE: N_("Two analyses side by side: the text above (A) and a second text or a second model (B). "
                        "When their tokens line up, A − B shows where they differ (red: A attends more, blue: B "
                        "does), and the heads that differ most are listed. First, where the chosen token looks in "
                        "each layer; then the chosen layer and head."),
    ids.TAB_INSIDE: N_("Where one head's weights come from: for one token, the formula softmax(q·k/√d) step by "
                     "step, then what the weights carry. Pick the token below, or click a row of the head "
                     "heatmap to come here."),
}
INSIDE_STEPS = (
    N_("Each token asks a question: its query vector q, one number for each of the head's dimensions (top row)."),
    N_("Each token offers something to match: its key vector k (a row per token)."),
    N_("Multiplying q and k dimension by dimension shows where they agree: red where both are large with the "
       "same sign, blue where they disagree."),
    N_("Adding those products up and dividing by √d gives one score per token: how well its key answers the "
       "question. A causal model masks the tokens that come later: the query cannot see them."),
    N_("Softmax turns the scores into shares that add up to 1: the attention weights. The red ticks are the "
       "model's own weights, for comparison."),
    N_("Each token also hands on a value vector; its length ‖f(x)‖ says how much it can pass on."),
    N_("Weight times value length is what the query really takes from each token: a large weight on a token "
       "that hands on little moves little (Kobayashi et al., 2020)."),
)
CAVEAT = N_("Attention weights show where a model looks, not why it predicts what it does: read them as one "
            "clue among others.")
METRIC_NAMES = {  # the atlas table's column names
    "entropy": N_("entropy"), "distance": N_("distance"), "local": N_("local"), "self": N_("self"),
    "previous": N_("previous"), "next": N_("next"), "delimiter": N_("delimiter"), "sink": N_("sink"),
    "induction": N_("induction"),
}
# The choices of the dropdowns; callbacks/boundary.py accepts exactly these from the browser.
TOP_K_CHOICES = (1, 2, 3, 5, 10)  # arcs per token
WINDOW_CHOICES = (1, 2, 3, 5, 8)  # the atlas's local window (tokens each side)
FOCUS_K_CHOICES = (1, 2, 3, 5, 8)  # token focus: the top k
PAIR_CHOICES = ("A→A", "A→B", "B→A", "B→B")  # a sentence pair's blocks
ATLAS_METRICS = (
    ("entropy", N_("normalised entropy (0 focused · 1 spread evenly)")),
    ("distance", N_("mean attended distance (tokens)")),
    ("local", N_("local ratio (share within the window)")),
    ("self", N_("attention to itself")),
    ("previous", N_("attention to the previous token")),
    ("next", N_("attention to the next token")),
    ("delimiter", N_("attention to delimiters")),
    ("sink", N_("attention-sink score (weight on the first token)")),
    ("induction", N_("induction score (on a repeated random-token probe)")),
)
ATLAS_HELP = N_("Sink score: the weight each query puts on the first token, averaged over the queries that can "
                "see another token (Xiao et al., 2023, “Efficient Streaming Language Models with Attention Sinks”). "
                "Induction score: the model reads 50 random tokens of its vocabulary twice, once per model; the score "
                "is the share of attention that each token of the second half puts on the token that followed its "
                "first occurrence, averaged over the second half (TransformerLens's induction pattern). Heads that "
                "share keys and values (grouped-query attention) are marked “kv 0”, “kv 1” …")
DROPDOWN_LABELS = {  # the dropdowns' own words
    "search": N_("Search"), "no_options_found": N_("Nothing matches"), "clear_search": N_("Clear the search"),
    "clear_selection": N_("Clear"), "select_all": N_("Select all"), "deselect_all": N_("Select none"),
    "selected_count": N_("{num_selected} selected"),
}


def dropdown_labels() -> dict:
    return {key: translate(value) for key, value in DROPDOWN_LABELS.items()}


def dropdown(component_id, **kwargs) -> dcc.Dropdown:
    """A dropdown that speaks the page's language."""
    return dcc.Dropdown(id=component_id, labels=dropdown_labels(), **kwargs)


def language_switch() -> html.Div:
    """English / 中文: each a link to this page in that language (assets/26-url.js keeps the URL's
    state, so the analysis and the view stay)."""
    current = current_language()
    return html.Div(className="ae-languages", role="group", **{"aria-label": _("Language")}, children=[
        html.Button(name, id={"type": ids.LANGUAGE, "lang": code}, n_clicks=0, lang=LANGUAGES[code][0].replace("_", "-"),
                    className="btn btn-sm " + ("btn-primary" if code == current else "btn-outline-primary"),
                    **{"aria-pressed": "true" if code == current else "false"})
        for code, (_locale, name) in LANGUAGES.items()])


def header(extra: list | None = None) -> html.Header:
    return html.Header(className="ae-header", children=[
        html.Div(className="d-flex align-items-start gap-3", children=[
            html.Div(className="flex-grow-1", children=[
                html.H1(_("Attention Explorer"), className="ae-title"),
                html.P(_("Attention is how a transformer decides, for every word piece (token), how much to look "
                         "at every other token. Type a sentence to see it, layer by layer and head by head."),
                       className="ae-lead"),
            ]),
            html.Div(className="d-flex align-items-center gap-2 ae-header-tools", children=[*(extra or []),
                                                                                            language_switch()]),
        ]),
    ])


def model_options(models: tuple[str, ...], default: str) -> list[dict]:
    """The model menu: each offered model, the default marked "bundled", and those whose files are not on
    this machine marked "not downloaded" (picking one then says how to get it, at once)."""
    from ..services.model.loading import available_here, display_name

    options = []
    for model_id in models:
        name = display_name(model_id)  # a local folder by its name, never its path on the server
        if model_id == default:
            label = _("{model} (bundled)").format(model=name)
        elif not available_here(model_id):
            label = _("{model} (not downloaded)").format(model=name)
        else:
            label = name
        options.append({"label": label, "value": model_id})
    return options


def examples_bar() -> html.Div:
    """The examples, in one row above the views: each fills the text box, analyses it and opens the view
    it is about."""
    return html.Div(className="d-flex flex-wrap align-items-center gap-1 mb-2 ae-examples", children=[
        html.Span(_("Examples"), className="small text-muted me-1"),
        *[dbc.Button(translate(example["label"]), id={"type": ids.EXAMPLE, "index": i}, size="sm", color="primary",
                     outline=True, className="ae-example")
          for i, example in enumerate(EXAMPLES)],
    ])


def input_panel(models: tuple[str, ...], default_model: str) -> dbc.Card:
    """The text, Analyze right under it, and the model: compact, so that the first screen of a laptop
    (1366 x 768) holds them and the layer and head selectors below, with the target or continuation box
    shown too."""
    return dbc.Card(className="mb-2", body=True, children=[
        html.Div(className="d-flex align-items-baseline", children=[
            dbc.Label(_("Text"), html_for=ids.TEXT, className="fw-semibold mb-1"),
            dbc.Button(_("+ second sentence (pair)"), id=ids.PAIR_TOGGLE, color="link", size="sm",
                       className="ms-auto px-0 py-0 ae-pair-toggle"),
        ]),
        dcc.Textarea(id=ids.TEXT, value=DEFAULT_TEXT, className="form-control ae-text", rows=3,
                     placeholder=_("Type a sentence…"), spellCheck=False),
        dbc.Collapse(id=ids.PAIR_COLLAPSE, is_open=False, children=[
            dcc.Textarea(id=ids.TEXT_PAIR, value="", className="form-control ae-text mt-2", rows=2,
                         placeholder=_("Optional second sentence, for models trained on sentence pairs"),
                         spellCheck=False),
        ]),
        html.Div(id=ids.TARGET_WRAP, style={"display": "none"}, children=[
            dbc.Label(_("Target (what the model writes)"), html_for=ids.TARGET, className="small mb-0 mt-1"),
            dcc.Textarea(id=ids.TARGET, value="", className="form-control ae-text ae-text-short", rows=1, wrap="off",
                         spellCheck=False, placeholder=_("Leave empty and the model writes its own (greedy decoding)")),
        ]),
        html.Div(id=ids.CONTINUE_WRAP, style={"display": "none"}, className="mt-1", children=[
            html.Div(className="d-flex align-items-center gap-2", children=[
                dbc.Label(_("Continue the text by"), html_for=ids.CONTINUE, className="small mb-0"),
                dbc.Input(id=ids.CONTINUE, type="number", min=0, max=40, step=1, value=0, size="sm",
                          style={"width": "4.5rem"}),
                html.Span(_("tokens (0: only read it)"), className="small text-muted"),
            ]),
        ]),
        html.Div(className="d-flex align-items-center mt-2", children=[
            dbc.Button(_("Analyze"), id=ids.ANALYZE, color="primary", n_clicks=0),
            html.Span(_("or Ctrl+Enter"), className="small text-muted ms-2"),
            html.Span(className="ms-auto ae-copy-link small", children=[
                dcc.Clipboard(id=ids.COPY_LINK, title=_("Copy a link to this view"), content="",
                              className="d-inline-block me-1"),
                html.Label(_("Copy link"), htmlFor=ids.COPY_LINK, className="text-muted"),
            ]),
        ]),
        html.Div(className="d-flex align-items-center gap-2 mt-2", children=[
            dbc.Label(_("Model"), html_for=ids.MODEL, className="fw-semibold mb-0"),
            html.Div(className="flex-grow-1 ae-min0", children=dropdown(
                ids.MODEL, options=model_options(models, default_model), value=default_model, clearable=False,
                searchable=False)),
        ]),
    ])


def controls_panel(page: dict) -> dbc.Card:
    layers = page.get("layer_max", 5) + 1
    return dbc.Card(className="mb-3", body=True, children=[
        html.Div(id=ids.KIND_WRAP, style={"display": "none"}, className="mb-2", children=[
            dbc.Label(_("Kind of attention"), html_for=ids.KIND, className="fw-semibold mb-0"),
            dbc.RadioItems(id=ids.KIND, value="encoder", options=kind_options(), inline=True, className="small ae-kind"),
        ]),
        html.Div(className="ae-layer-head", children=[  # label and control on one line, labels in one column
            dbc.Label(_("Layer"), html_for=ids.LAYER, className="fw-semibold mb-0"),
            html.Div(className="ae-min0 ae-slider-cell", children=dcc.Slider(
                id=ids.LAYER, min=0, max=layers - 1, step=1, value=page.get("layer", 0),
                marks=page.get("layer_marks", {i: str(i) for i in range(layers)}), updatemode="mouseup")),
            dbc.Label(_("Head"), html_for=ids.HEAD, className="fw-semibold mb-0"),
            html.Div(className="ae-min0", children=dropdown(
                ids.HEAD, options=page.get("head_options", head_options(12)), value=page.get("head", ids.HEAD_ALL),
                clearable=False, searchable=False)),
        ]),
        html.Div(_("Layers and heads count from 0."), className="small text-muted mt-1"),
        dbc.Label(_("Attention"), html_for=ids.ATTN_MODE, className="fw-semibold mt-3"),
        dbc.RadioItems(id=ids.ATTN_MODE, value="raw", options=[
            {"label": _("Raw"), "value": "raw"}, {"label": _("Rollout"), "value": "rollout"},
            {"label": _("Weighted by value norm"), "value": "value"}]),
        html.Ul(className="small text-muted ae-mode-help", children=[
            html.Li(_("Rollout follows attention through all layers up to the chosen one (heads averaged, "
                      "with the residual connection).")),
            html.Li(_("Weighted by value norm scales each weight by the size of the vector the attended token "
                      "hands on (‖f(x)‖), so attention that moves almost nothing fades: often the weight on "
                      "[CLS], [SEP] and punctuation (Kobayashi et al., EMNLP 2020, “Attention is not only a "
                      "weight”). Rows are rescaled to add up to 1; the heatmap's hover also gives the unscaled "
                      "product.")),
        ]),
        dbc.Checklist(id=ids.VIEW_SWITCHES, switch=True, value=[], className="mt-2", options=[
            {"label": _("Hide special tokens"), "value": "hide"},
            {"label": _("Merge sub-words into words"), "value": "merge"},
            {"label": _("Leave out the first token"), "value": "first"},
            {"label": _("Pooled cells: mean (else max)"), "value": "mean"}]),
        html.Div(id=ids.PAIR_WRAP, style={"display": "none"}, className="mt-3", children=[
            dbc.Label(_("Sentence pair"), html_for=ids.PAIR_FILTER, className="fw-semibold"),
            dbc.RadioItems(id=ids.PAIR_FILTER, value="all", inline=True, options=pair_options()),
            html.Div(_("A→B: the tokens of sentence A looking at sentence B; the rest is left blank."),
                     className="small text-muted"),
        ]),
    ])


def kind_options(kinds: list[str] | tuple[str, ...] = ("encoder", "decoder", "cross")) -> list[dict]:
    labels = {"encoder": _("Encoder (source)"), "decoder": _("Decoder (target)"),
              "cross": _("Cross (target → source)")}
    return [{"label": labels[kind], "value": kind} for kind in kinds]


def pair_options() -> list[dict]:
    return [{"label": _("All"), "value": "all"}] + [{"label": name, "value": name}
                                                   for name in PAIR_CHOICES]


def head_options(num_heads: int) -> list[dict]:
    return ([{"label": _("All heads"), "value": ids.HEAD_ALL}, {"label": _("Mean of heads"), "value": ids.HEAD_MEAN}]
            + [{"label": _("Head {head}").format(head=h), "value": str(h)} for h in range(num_heads)])


def _graph(graph_id: str, figure: dict | None = None, remove: tuple[str, ...] = (), **kwargs) -> dcc.Graph:
    config = {"displaylogo": False, "showSendToCloud": False, "toImageButtonOptions": {"scale": 2},
              "modeBarButtonsToRemove": ["select2d", "lasso2d", *remove]}
    if current_language() == "zh":
        config["locale"] = "zh-CN"  # plotly.js's own words (its modebar): assets/plotly-locale-zh-cn.js
    return dcc.Graph(id=graph_id, figure=figure or empty_figure(_("Type a sentence and press Analyze.")),
                     config=config, **kwargs)


def arc_controls() -> dbc.Row:
    return dbc.Row(className="g-3 align-items-center mb-2", children=[
        dbc.Col(width="auto", children=[
            dbc.Label(_("Top arcs per token"), html_for=ids.ARC_TOP_K, className="small mb-0 me-2"),
            dropdown(ids.ARC_TOP_K, options=[{"label": str(k), "value": k} for k in TOP_K_CHOICES],
                         value=3, clearable=False, style={"width": "90px"}),
        ]),
        dbc.Col(children=[
            dbc.Label(_("Minimum weight"), html_for=ids.ARC_MIN_WEIGHT, className="small mb-0"),
            dcc.Slider(id=ids.ARC_MIN_WEIGHT, min=0, max=0.5, step=0.01, value=0.05,
                       marks={0: "0", 0.1: "0.1", 0.2: "0.2", 0.3: "0.3", 0.4: "0.4", 0.5: "0.5"},
                       updatemode="mouseup"),
        ]),
        dbc.Col(width=12, id=ids.ARC_START_WRAP, style={"display": "none"}, children=[
            dbc.Label(_("Tokens shown from"), html_for=ids.ARC_START, className="small mb-0"),
            dcc.Slider(id=ids.ARC_START, min=0, max=0, step=1, value=0, marks=None, updatemode="mouseup",
                       tooltip={"placement": "bottom"}),
        ]),
        dbc.Col(width=12, children=html.Div(id=ids.ARC_HINT, className="small text-muted")),
        dbc.Col(width=12, children=html.Div(id=ids.ARC_LEGEND, className="ae-arc-legend small")),
    ])


def head_legend(names: list[str], colors: list[str]) -> list:
    """Chips naming the heads whose arcs are drawn together, each framed in its arcs' colour (the text
    stays dark: the palette's light colours would not be readable as text). Each is a button: a click
    hides that head's arcs (again: shows them), a double click shows that head alone (again: every
    head), in the browser (assets/22-arcs.js), as BertViz's head colours do."""
    if not names:
        return []
    return [html.Span(_("Heads:"), className="text-muted me-1"),
            *[html.Button(name, type="button", className="ae-chip ae-head-chip", **{
                "data-head": str(i), "aria-pressed": "true", "style": {"borderColor": colors[i % len(colors)]},
                "title": _("Click: hide or show this head · double click: this head alone")})
              for i, name in enumerate(names)]]


def _tab(tab_id: str, label: str, *children, **kwargs) -> dbc.Tab:
    return dbc.Tab(tab_id=tab_id, label=label, id=f"{tab_id}-tab", **kwargs, children=html.Div(className="pt-3", children=[
        html.P(translate(HELP[tab_id]), className="ae-help"), *children,
        html.P(translate(CAVEAT), className="small text-muted fst-italic mt-2")]))


def atlas_controls() -> dbc.Row:
    return dbc.Row(className="g-3 align-items-end mb-2", children=[
        dbc.Col(md=6, children=[
            dbc.Label(_("Colour by"), html_for=ids.ATLAS_METRIC, className="small mb-0"),
            dropdown(ids.ATLAS_METRIC, value="entropy", clearable=False,
                     options=[{"label": translate(title), "value": name} for name, title in ATLAS_METRICS]),
        ]),
        dbc.Col(md=3, children=[
            dbc.Label(_("Local window (tokens)"), html_for=ids.ATLAS_WINDOW, className="small mb-0"),
            dropdown(ids.ATLAS_WINDOW, value=3, clearable=False,
                         options=[{"label": str(w), "value": w} for w in WINDOW_CHOICES]),
        ]),
    ])


def _progress_area(area: str, bar: str, cancel: str, label: str) -> html.Div:
    """A progress bar with Cancel beside it and a line under it, hidden until a pass runs."""
    return html.Div(id=area, className="ae-progress mb-1", style={"display": "none"}, children=[
        dbc.Row(className="g-2 align-items-center", children=[
            dbc.Col(dbc.Progress(id=bar, value=0, max=100, striped=True, animated=True,
                                 style={"height": "1.1rem"}), width=True),
            dbc.Col(dbc.Button(_("Cancel"), id=cancel, color="secondary", outline=True, size="sm",
                               n_clicks=0), width="auto"),
        ]),
        html.Div(id=label, className="small text-muted mt-1", role="status"),
    ])


def atlas_progress() -> html.Div:
    """The atlas's progress bar, its line and Cancel: shown while the heads are measured in the background
    (``callbacks.atlas``), hidden otherwise. The poll runs only while a job does."""
    return _progress_area(ids.ATLAS_PROGRESS, ids.ATLAS_PROGRESS_BAR, ids.ATLAS_CANCEL, ids.ATLAS_PROGRESS_LABEL)


def analyze_progress() -> html.Div:
    """A long analysis's progress (layer by layer) and Cancel, under the status area; hidden otherwise."""
    return html.Div([
        _progress_area(ids.ANALYZE_PROGRESS, ids.ANALYZE_PROGRESS_BAR, ids.ANALYZE_CANCEL, ids.ANALYZE_PROGRESS_LABEL),
        html.Div(id=ids.ANALYZE_PROGRESS_TEXT, className="small text-muted mb-2", role="status"),
        dcc.Interval(id=ids.ANALYZE_POLL, interval=400, disabled=True, n_intervals=0),
        dcc.Store(id=ids.ANALYZE_JOB, storage_type="memory"),
        dcc.Store(id=ids.ANALYZE_READY, storage_type="memory"),
    ])


ATLAS_MEASURING_NOTE = N_("Measuring every head of this text… The atlas appears here when it is done.")


def atlas_figure() -> html.Div:
    """The atlas's figure with a note over it, shown (``callbacks.atlas``) while the heads are measured in
    the background: the figure under it is kept, and seen again when the pass is done or cancelled."""
    return html.Div(className="ae-measure-holder", children=[
        _graph(ids.ATLAS_MAP),
        html.Div(translate(ATLAS_MEASURING_NOTE), id=ids.ATLAS_MEASURING, className="ae-measuring",
                 role="status", style={"display": "none"})])


def atlas_progress_line() -> html.Div:
    """A line under the progress bar (heads measured so far; a cancelled or failed pass), with the poll
    and the job the page follows."""
    return html.Div([html.Div(id=ids.ATLAS_PROGRESS_TEXT, className="small text-muted mb-2", role="status"),
                     dcc.Interval(id=ids.ATLAS_POLL, interval=400, disabled=True, n_intervals=0),
                     dcc.Store(id=ids.ATLAS_JOB, storage_type="memory")])


def atlas_table(rows: list[dict] | None = None):
    """The atlas's sortable table. Not in the first page: it is sent when the atlas opens, so the
    table's 630 KB of scripts load then, not with the page."""
    from dash import dash_table

    columns = [{"name": _("layer"), "id": "layer"}, {"name": _("head"), "id": "head"},
               {"name": _("type"), "id": "label"}]
    columns += [{"name": translate(METRIC_NAMES[name]), "id": name, "type": "numeric"} for name, _title in ATLAS_METRICS]
    rows = [{**row, "label": translate(row["label"])} if isinstance(row.get("label"), str) else row for row in rows or []]
    return dash_table.DataTable(
        id=ids.ATLAS_TABLE, columns=columns, data=rows, sort_action="native", page_size=12,
        style_table={"overflowX": "auto"}, style_cell={"fontFamily": "inherit", "fontSize": "0.85rem",
                                                       "padding": "4px 8px", "cursor": "pointer"},
        style_header={"fontWeight": "600", "backgroundColor": "#f4f6f8"},
    )


def focus_controls() -> dbc.Row:
    return dbc.Row(className="g-3 align-items-end mb-2", children=[
        dbc.Col(md=6, children=[
            dbc.Label(_("Token"), html_for=ids.FOCUS_TOKEN, className="small mb-0"),
            dropdown(ids.FOCUS_TOKEN, options=[], value=None, clearable=False,
                     placeholder=_("Analyze a text first")),
        ]),
        dbc.Col(md=3, children=[
            dbc.Label(_("Top k"), html_for=ids.FOCUS_K, className="small mb-0"),
            dropdown(ids.FOCUS_K, value=3, clearable=False,
                         options=[{"label": str(k), "value": k} for k in FOCUS_K_CHOICES]),
        ]),
    ])


def export_menu() -> html.Div:
    """Export what is open: its picture (PNG, SVG), the numbers behind it (CSV), the whole analysis
    (JSON), or the view as one HTML file that opens offline."""
    item = lambda item_id, label: dbc.DropdownMenuItem(label, id=item_id, n_clicks=0)  # noqa: E731
    return html.Div(className="d-flex justify-content-end align-items-center gap-2 ae-export", children=[
        html.Span(id=ids.EXPORT_STATUS, className="small text-muted", role="status"),
        dbc.DropdownMenu(id=ids.EXPORT_MENU, label=_("Export"), size="sm", color="secondary", align_end=True,
                         children=[
                             dbc.DropdownMenuItem(_("Picture of this view"), header=True),
                             item(ids.EXPORT_PNG, _("PNG image")), item(ids.EXPORT_SVG, _("SVG (vector, for papers)")),
                             dbc.DropdownMenuItem(divider=True),
                             item(ids.EXPORT_CSV, _("Numbers of this view (CSV)")),
                             item(ids.EXPORT_HTML, _("This view as a standalone page (HTML)")),
                             item(ids.EXPORT_JSON, _("The whole analysis (JSON)")),
                         ]),
        dcc.Store(id=ids.EXPORT_LINK, storage_type="memory"),
    ])


def views_panel(page: dict) -> html.Div:
    return html.Div(className="ae-views", children=[
        html.Div(id=ids.VIEW_NOTICE),
        export_menu(),
        dbc.Tabs(id=ids.TABS, active_tab=ids.TAB_GRID, children=[
            _tab(ids.TAB_GRID, _("Head grid"),
                 _graph(ids.HEAD_GRID, page.get("grid"), clear_on_unhover=True),
                 dcc.Tooltip(id=ids.GRID_TOOLTIP, direction="bottom", className="ae-tooltip")),
            _tab(ids.TAB_HEATMAP, _("Head heatmap"),
                 html.Div(className="ae-square", children=_graph(
                     ids.HEAD_HEATMAP, clear_on_unhover=True,
                     style={"width": "var(--ae-square-width)", "height": "var(--ae-square-height)"})),
                 dcc.Tooltip(id=ids.HEATMAP_TOOLTIP, direction="bottom", className="ae-tooltip")),
            _tab(ids.TAB_ARCS, _("Arcs"), arc_controls(),
                 html.Div(className="ae-scroll", children=_graph(
                     # the camera button would miss the arcs (drawn on the page's canvas): Export draws them
                     ids.ARC_VIEW, clear_on_unhover=True, remove=("toImage",), responsive=False))),
            _tab(ids.TAB_OVERVIEW, _("Model overview"),
                 _graph(ids.OVERVIEW, clear_on_unhover=True),
                 dcc.Tooltip(id=ids.OVERVIEW_TOOLTIP, direction="bottom", className="ae-tooltip")),
            _tab(ids.TAB_ATLAS, _("Head atlas"), atlas_controls(), atlas_progress(), atlas_progress_line(),
                 atlas_figure(),
                 html.Ul(id=ids.ATLAS_LEGEND, className="small ae-legend"),
                 html.P(translate(ATLAS_HELP), className="small text-muted"), html.Div(id=ids.ATLAS_TABLE_HOLDER)),
            _tab(ids.TAB_FOCUS, _("Token focus"), focus_controls(), _graph(ids.FOCUS_HEATMAP),
                 html.Div(id=ids.FOCUS_TABLES)),
            _tab(ids.TAB_INSIDE, _("Inside a head"), inside_panel()),
            _tab(ids.TAB_COMPARE, _("Compare"), compare_panel(page.get("models", ()))),
            _tab(ids.TAB_GENERATION, _("Generation"), generation_panel(), tab_style={"display": "none"}),
        ]),
    ])


def compare_panel(models: tuple[str, ...]) -> html.Div:
    return html.Div(children=[
        dbc.Row(className="g-2 align-items-end mb-2", children=[
            dbc.Col(md=6, children=[
                dbc.Label(_("Text B"), html_for=ids.COMPARE_TEXT, className="small mb-0"),
                dcc.Textarea(id=ids.COMPARE_TEXT, value="", rows=2, className="form-control ae-text", spellCheck=False,
                             placeholder=_("A second text (or the same text, with model B)")),
            ]),
            dbc.Col(md=3, children=[
                dbc.Label(_("Model B"), html_for=ids.COMPARE_MODEL, className="small mb-0"),
                dropdown(ids.COMPARE_MODEL, options=[{"label": _("Same as A"), "value": ""}]
                         + model_options(models, models[0] if models else ""), value="", clearable=False),
            ]),
            dbc.Col(md=3, children=[dbc.Button(_("Compare"), id=ids.COMPARE_BUTTON, color="primary", n_clicks=0,
                                               className="w-100")]),
        ]),
        html.Div(id=ids.COMPARE_STATUS, className="small mb-2", role="status"),
        _graph(ids.COMPARE_FOCUS, empty_figure(_("Type text B (or pick model B) and press Compare."))),
        _graph(ids.COMPARE_HEADS, empty_figure("")),
        html.Div(id=ids.COMPARE_TABLE_HOLDER),
    ])


def compare_table(rows: list[dict] | None = None):
    """The heads that differ most between A and B, sortable (sent when there is something to list)."""
    from dash import dash_table

    columns = [{"name": _("layer"), "id": "layer"}, {"name": _("head"), "id": "head"},
               {"name": _("sum of |A − B|"), "id": "sum", "type": "numeric"},
               {"name": _("largest |A − B|"), "id": "max", "type": "numeric"}]
    return dash_table.DataTable(
        id=ids.COMPARE_TABLE, columns=columns, data=rows or [], sort_action="native", page_size=10,
        sort_by=[{"column_id": "sum", "direction": "desc"}],
        style_table={"overflowX": "auto"}, style_cell={"fontFamily": "inherit", "fontSize": "0.85rem",
                                                       "padding": "4px 8px", "cursor": "pointer"},
        style_header={"fontWeight": "600", "backgroundColor": "#f4f6f8"},
    )


def generation_panel() -> html.Div:
    return html.Div(children=[
        dbc.Label(_("Step: the generated token"), html_for=ids.GEN_STEP, className="small mb-0"),
        dcc.Slider(id=ids.GEN_STEP, min=1, max=1, step=1, value=1, marks=None, updatemode="mouseup",
                   tooltip={"placement": "bottom", "always_visible": False}),
        html.Div(id=ids.GEN_STATUS, className="small text-muted mb-2"),
        _graph(ids.GEN_HEADS), _graph(ids.GEN_LAYERS),
    ])


def inside_panel() -> html.Div:
    return html.Div(children=[
        dbc.Row(className="g-3 align-items-end mb-2", children=[
            dbc.Col(md=6, children=[
                dbc.Label(_("Query token"), html_for=ids.INSIDE_QUERY, className="small mb-0"),
                dropdown(ids.INSIDE_QUERY, options=[], value=None, clearable=False,
                         placeholder=_("Analyze a text first")),
            ]),
        ]),
        html.Div(id=ids.INSIDE_STATUS, className="small text-muted mb-2"),
        dbc.Row(className="g-3", children=[
            dbc.Col(lg=3, children=html.Ol(className="small ae-steps", children=[html.Li(translate(s)) for s in INSIDE_STEPS])),
            dbc.Col(lg=9, children=[_graph(ids.INSIDE_VECTORS), _graph(ids.INSIDE_WEIGHTS)]),
        ]),
    ])


def browser_words() -> dict:
    """The words the browser-side code shows (assets/2*.js, ``AE.words``), in the page's language."""
    return {
        "overview_cell": _("layer {layer} · head {head} (click to open)"),
        "overview_value": _("layer {layer} · head {head} · {cell} (click to open)"),
        "pooled_cell": _("{tile} · tokens {query} → {key}: max {weight}"),
        "value_share": _("{share} of the row (α·‖f(x)‖ = {product})"),
        "block_max": _("tokens {query} → {key}: max {weight}"),
        "block_mean": _("tokens {query} → {key}: mean {weight}"),
        "tile_block_max": _("{tile} · tokens {query} → {key}: max {weight}"),
        "tile_block_mean": _("{tile} · tokens {query} → {key}: mean {weight}"),
        "left_out": _("left out by the pair filter"),
        "nothing_to_export": _("Nothing to export yet."),
        "page_title": _("Attention Explorer"),
    }


def create_layout(settings, page: dict | None = None, views: str = "{}") -> html.Div:
    """The whole page for the given settings (models offered, default model). ``page`` holds what the
    first view shows (the handle, status, controls and head grid of the first example, see
    ``callbacks.analyze.first_page``), so a new visitor's page needs no request to show it. ``views`` is
    what the browser needs of each view, as JSON (``callbacks.registry.browser_table``)."""
    page = page or {}
    return dbc.Container(fluid=True, className="ae-page", children=[
        dcc.Store(id=ids.URL, storage_type="memory"),
        dcc.Store(id=ids.SHARE, storage_type="memory", data=page.get("share")),
        dcc.Store(id=ids.URL_SINK, storage_type="memory"),
        dcc.Store(id=ids.EXPORT_SINK, storage_type="memory"),
        dcc.Store(id=ids.EXPORT_IMAGE, storage_type="memory"),
        dcc.Store(id=ids.COMPARE_HANDLE, storage_type="memory"),
        dcc.Store(id=ids.COMPARE_SHARE, storage_type="memory"),
        dcc.Store(id=ids.HANDLE, storage_type="memory", data=page.get("handle")),
        dcc.Store(id=ids.ARC_FOCUS, storage_type="memory"),
        dcc.Store(id=ids.ZOOM, storage_type="memory"),
        dcc.Store(id=ids.TOKEN, storage_type="memory"),
        dcc.Store(id=ids.VIEW_REQUEST, storage_type="memory"),
        dcc.Store(id=ids.ATLAS_TABLE_FOR, storage_type="memory"),
        dcc.Store(id=ids.ARC_HOVER_SINK, storage_type="memory"),
        dcc.Store(id=ids.KIND_DIMS, storage_type="memory", data=page.get("kind_dims")),
        html.Div(id=ids.I18N, hidden=True, **{"data-strings": json.dumps(browser_words(), ensure_ascii=False),
                                              "data-lang": LANGUAGES[current_language()][0].replace("_", "-"),
                                              "data-views": views}),
        header(extra=tour_components()),
        dbc.Row(children=[
            dbc.Col(md=4, lg=3, children=[input_panel(settings.models, settings.default_model), controls_panel(page)]),
            dbc.Col(md=8, lg=9, children=[
                examples_bar(),
                dcc.Loading(type="dot", delay_show=250, children=html.Div(
                    id=ids.STATUS, className="ae-status", children=page.get("status"))),
                analyze_progress(),
                views_panel({**page, "models": settings.models}),
            ]),
        ]),
        html.Footer(className="ae-footer small text-muted", children=translate(CAVEAT)),
    ])


def validation_layout(settings, views: str = "{}") -> html.Div:
    """Every component any callback names: the page, plus what the router sends later."""
    return html.Div([create_layout(settings, views=views), atlas_table(), compare_table()])
