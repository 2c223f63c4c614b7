"""Inside a head: for one query token, the attention formula ``softmax(q·k/√d)`` step by step, then what
the weights carry (value norms, Kobayashi et al. 2020)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from dash import Output, html

from ..components import ids
from ..components.analysis_figures import inside_keys, inside_vectors_figure, inside_weights_figure
from ..components.figures import empty_figure
from ..components.i18n import _, translate
from ..services.analyses.tokens import display_token
from ..services.analyses.views import View, ViewOptions
from ..services.inside import inside_csv, inside_head_for
from .boundary import ViewState
from .common import NOT_ANALYSED, Unavailable, note_of
from .token_focus import default_token
from .viewspec import ViewSpec

OUTPUTS = {"inside_vectors": Output(ids.INSIDE_VECTORS, "figure"), "inside_weights": Output(ids.INSIDE_WEIGHTS, "figure"),
           "inside_status": Output(ids.INSIDE_STATUS, "children"), "inside_options": Output(ids.INSIDE_QUERY, "options"),
           "inside_value": Output(ids.INSIDE_QUERY, "value"), "token": Output(ids.TOKEN, "data", allow_duplicate=True)}
# One head of the stored attention: the mode and switches do not apply.


def placeholder(message: str) -> dict:
    return {"inside_vectors": empty_figure(message), "inside_weights": empty_figure(""), "inside_status": ""}


def query_options(tokens) -> list[dict]:
    return [{"label": f"{display_token(t)} (#{i})", "value": i} for i, t in enumerate(tokens)]


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    result = view.result
    raw = View(result, ViewOptions(), view.key, kind=view.kind)
    queries, key_tokens = raw.kv.query_tokens, raw.kv.key_tokens
    out = {}
    token = state.token
    if token is None or not 0 <= token < len(queries):
        token = default_token(raw)
        out["token"] = token
    if triggered & {"handle", "tab", "kind"}:
        out["inside_options"] = query_options(queries)
    out["inside_value"] = token
    head = state.head.number if state.head.number is not None else 0
    inside = inside_head_for(view.key, result, state.layer, head, token, kind=view.kind)
    weights = inside.weights if inside.available else inside.model_weights
    keys = inside_keys(np.where(inside.masked, -1.0, weights))
    labels = [display_token(key_tokens[i]) for i in keys]
    query = display_token(queries[token])
    notes = [_("Layer {layer} · Head {head} · query “{token}” (#{index}).").format(
        layer=state.layer, head=head, token=query, index=token)]
    if state.head.number is None:
        notes.append(_("Showing head 0: pick a head in the sidebar to look inside another."))
    if note_of(view.options):  # Rollout, value norms or a switch is on: this tab shows the head itself
        notes.append(_("Raw attention: the mode and switches do not apply to this tab."))
    if len(keys) < len(key_tokens):
        notes.append(_("Showing the {shown} tokens it weighs most, of {total}; together they get {share} of its "
                       "attention.").format(shown=len(keys), total=len(key_tokens), share=f"{float(weights[keys].sum()):.0%}"))
    if inside.available:
        notes += recipe_notes(inside)
        before = (inside.query_before, inside.keys_before[keys]) if inside.rotary else (None, None)
        vectors = inside_vectors_figure(inside.query_vector, inside.key_vectors[keys], inside.products[keys],
                                        labels, query, *before)
    else:
        notes.append(_("Steps 1–4 cannot be shown: {reason}").format(reason=translate(inside.reason)))
        vectors = empty_figure(_("The vectors cannot be shown: {reason}").format(reason=translate(inside.reason)))
    recorded = inside.available and inside.scaled_scores is not None
    steps = {"scores": inside.scores[keys] if inside.available and not recorded else None,
             "scaled_scores": inside.scaled_scores[keys] if recorded else None,
             "capped_scores": inside.scores[keys] if recorded and inside.softcap else None,
             "weights": weights[keys], "model_weights": inside.model_weights[keys] if inside.available else None,
             "value_norms": inside.value_norms[keys] if inside.value_norms is not None else None,
             "weighted": inside.weighted[keys] if inside.weighted is not None else None}
    out.update(inside_vectors=vectors, inside_weights=inside_weights_figure(steps, labels, inside.masked[keys]),
               inside_status=[html.Div(note) for note in notes])
    return out


def agreement(difference: float) -> str:
    """How closely a check agrees, in words: "within 3e-08", or "exactly" (not "within 0")."""
    if difference == 0:
        return _("exactly")
    return _("within {difference}").format(difference=f"{difference:.1g}")


def recipe_notes(inside) -> list[str]:
    """What the head's scores are made of, and the checks against the model, in plain words."""
    if inside.scaled_scores is None:  # an eagerly computed result: checked against the model's own row
        return [_("Check: these weights equal the model's own {agreement} (scale {scale}, d = {d}).")
                .format(agreement=agreement(inside.max_difference), scale=f"{inside.scale:.4g}", d=inside.d_head)]
    notes = []
    root = inside.d_head ** -0.5
    if abs(inside.scale - root) <= 1e-6 * root:
        notes.append(_("Scores are q·k × 1/√d = {scale} (d = {d}).").format(scale=f"{inside.scale:.4g}", d=inside.d_head))
    else:
        notes.append(_("Scores are q·k × {scale}: this model's own scaling, not 1/√d = {root} (d = {d}).").format(
            scale=f"{inside.scale:.4g}", root=f"{root:.4g}", d=inside.d_head))
    if inside.rotary:
        notes.append(_("Rotary positions: the query and the keys are turned by an angle that grows with their "
                       "position before q·k (step 2), so q·k depends on how far apart the tokens are. Check: the "
                       "model's own rotation of the vectors before gives the vectors after {agreement}.")
                     .format(agreement=agreement(inside.rotation_difference)))
    if inside.softcap:
        notes.append(_("Soft-cap: each score becomes {cap}·tanh(score / {cap}), so no score exceeds ±{cap} (step 4b).")
                     .format(cap=f"{inside.softcap:g}"))
    if inside.window:
        notes.append(_("Sliding window: each token sees the {window} tokens up to itself; the others are masked.")
                     .format(window=inside.window))
    if inside.sink is not None:
        notes.append(_("A learned sink takes part of the softmax: this row's weights add up to {total}, not 1.")
                     .format(total=f"{float(np.nansum(inside.weights)):.3f}"))
    if inside.kv_heads and len(inside.sharing) > 1:
        notes.append(_("Grouped-query attention: heads {first}–{last} share key/value head {kv} (of {kv_heads}): the "
                       "same keys and values, each head with its own queries.").format(
            first=inside.sharing[0], last=inside.sharing[-1], kv=inside.kv_head, kv_heads=inside.kv_heads))
    if inside.output_difference == inside.output_difference:  # not NaN
        notes.append(_("Check: these weights times the values give the model's own attention output for this token "
                       "{agreement}.").format(agreement=agreement(inside.output_difference)))
    return notes


def _query(result, state, view) -> int | None:
    """The query token the tab looks inside for: the one followed, else the one it picks."""
    raw = View(result, ViewOptions(), view.key, kind=view.kind)
    token = state.token
    return token if token is not None and 0 <= token < len(raw.kv.query_tokens) else default_token(raw)


def csv(result, state, view, max_rows: int) -> Iterable[str]:
    """Every step the tab shows, for its query token in the head looked inside (head 0 when none is
    chosen): the query and key vectors, their products, the scale and scores, the weights beside the
    model's own, the value norms and what the query takes (``services.inside.inside_csv``)."""
    head = state.head.number if state.head.number is not None else 0
    token = _query(result, state, view)
    if token is None:
        raise Unavailable(translate(NOT_ANALYSED))
    inside = inside_head_for(view.key, result, state.layer, head, token, kind=view.kind)
    raw = View(result, ViewOptions(), view.key, kind=view.kind)
    return [inside_csv(inside, [display_token(t) for t in raw.kv.key_tokens], display_token(raw.kv.query_tokens[token]),
                       max_rows=max_rows)]


def file_extra(state) -> str | None:
    """Files name the query token looked inside for (``…_inside_query8.csv``)."""
    return f"query{state.token}" if state.token is not None else None


# The HTML export holds both figures: steps 1-3 (the vectors and their products), then the scores,
# weights and what they carry.
VIEW = ViewSpec(name="inside", tab=ids.TAB_INSIDE, outputs=OUTPUTS, main="inside_weights", graph=ids.INSIDE_WEIGHTS, depends=frozenset({"handle", "layer", "head", "tab", "token", "kind"}), render=render, placeholder=placeholder, csv=csv, uses_mode=False, default_head=0, file_extra=file_extra, html_figures=("inside_vectors", "inside_weights"))
