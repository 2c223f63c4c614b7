"""Generation: a decoder-only model continued the text; at step t, where generated token t looks (the
prompt, the tokens written before it, itself), for every head of the chosen layer and, heads averaged,
for every layer. Generated tokens are marked."""

from __future__ import annotations

from collections.abc import Iterable

from dash import Output, html

from ..components import ids
from ..components.analysis_figures import generation_figure
from ..components.figures import empty_figure, safe_label
from ..components.i18n import _
from ..services.analyses.tokens import display_token
from ..services.serial import view_csv_chunks
from .boundary import ViewState
from .common import Unavailable, note_of
from .viewspec import ViewSpec

OUTPUTS = {"gen_heads": Output(ids.GEN_HEADS, "figure"), "gen_layers": Output(ids.GEN_LAYERS, "figure"),
           "gen_status": Output(ids.GEN_STATUS, "children")}
# The stored attention of one row: the mode and switches do not apply (the page says so).


def placeholder(message: str) -> dict:
    return {"gen_heads": empty_figure(message), "gen_layers": empty_figure(""), "gen_status": ""}


def step_row(result, step: int) -> tuple[int, int]:
    """The step shown (1 to the steps written; the boundary bounds it by the model's limit only) and the
    row of the token written at that step."""
    step = min(max(1, step), result.generation_steps)
    return step, int(result.prompt_length) + step - 1


def render(view, state: ViewState, triggered: frozenset[str]) -> dict:
    result = view.result
    steps = result.generation_steps
    if steps == 0:
        return placeholder(_("This analysis holds no generated tokens. Choose a decoder-only model (GPT-2 family), "
                             "set “Continue the text by” above 0 and press Analyze."))
    step, row = step_row(result, state.step)
    seen = row + 1
    weights = result.step_attention(step)[:, :, :seen]  # (layers, heads, seen): keys it cannot see are 0
    labels = [display_token(t) for t in result.tokens[:seen]]
    generated = result.generated_mask[:seen]
    token = labels[row]
    heads = generation_figure(weights[state.layer], labels, generated, step_token=row, row_name=_("head"),
                              title=_("Step {step} of {steps}: where “{token}” looks · layer {layer}, every head")
                              .format(step=step, steps=steps, token=safe_label(token), layer=state.layer))
    layers = generation_figure(weights.mean(axis=1), labels, generated, step_token=row, row_name=_("layer"),
                               title=_("Step {step}: where “{token}” looks in every layer (heads averaged)")
                               .format(step=step, token=safe_label(token)))
    written = [html.Span(display_token(t), className="ae-gen-token" + (" ae-gen-now" if i == row else ""))
               for i, t in enumerate(result.tokens[result.prompt_length:], start=int(result.prompt_length))]
    notes = [_("The model wrote {count} tokens after the prompt ({prompt} tokens), greedily{ended}.").format(
        count=steps, prompt=result.prompt_length,
        ended=_(", and stopped at its end token") if result.ended else ""),
        _("Step {step} is “{token}”: the row of its attention, over the prompt, the {before} tokens written before "
          "it and itself (the same as the last row of a pass over the first {seen} tokens).").format(
            step=step, token=token, before=step - 1, seen=seen)]
    if note_of(view.options):
        notes.append(_("Raw attention: the mode and switches do not apply to this tab."))
    return {"gen_heads": heads, "gen_layers": layers,
            "gen_status": [html.Div(n) for n in notes]
            + [html.Div(className="mt-1", children=[html.Span(_("Written:") + " "), *written])]}


def csv(result, state, view, max_rows: int) -> Iterable[str]:
    """The row of the token written at the chosen step, every layer and head."""
    if not result.generation_steps:
        raise Unavailable(_("This analysis holds no generated tokens."))
    step, row = step_row(result, state.step)
    weights = result.step_attention(step)[:, :, None, :row + 1]
    tokens = list(result.tokens[:row + 1])
    return view_csv_chunks(weights, [tokens[row]], tokens, query_index=[row], max_rows=max_rows)


def file_extra(state) -> str:
    return f"step{state.step}"


VIEW = ViewSpec(name="generation", tab=ids.TAB_GENERATION, outputs=OUTPUTS, main="gen_heads", graph=ids.GEN_HEADS, depends=frozenset({"handle", "layer", "tab", "step"}), render=render, placeholder=placeholder, csv=csv, uses_mode=False, file_extra=file_extra)
