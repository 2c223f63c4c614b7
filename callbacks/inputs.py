"""Input conveniences: example buttons fill the text boxes; the pair box opens and closes."""

from __future__ import annotations

from dash import ALL, Dash, Input, Output, State, ctx, no_update

from components import ids
from components.layout import EXAMPLES


def fill_example(triggered_index: int | None):
    """(text, pair, pair box open) for the example button that was pressed."""
    if triggered_index is None or not 0 <= triggered_index < len(EXAMPLES):
        return no_update, no_update, no_update
    example = EXAMPLES[triggered_index]
    return example["text"], example["pair"], bool(example["pair"])


def toggle_pair(n_clicks: int | None, is_open: bool) -> bool:
    return not is_open if n_clicks else is_open


def register(app: Dash) -> None:
    @app.callback(
        Output(ids.TEXT, "value"), Output(ids.TEXT_PAIR, "value"), Output(ids.PAIR_COLLAPSE, "is_open"),
        Input({"type": ids.EXAMPLE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def _fill(_clicks):
        trigger = ctx.triggered_id
        if not trigger or not any(_clicks):
            return no_update, no_update, no_update
        return fill_example(trigger["index"])

    app.callback(
        Output(ids.PAIR_COLLAPSE, "is_open", allow_duplicate=True),
        Input(ids.PAIR_TOGGLE, "n_clicks"), State(ids.PAIR_COLLAPSE, "is_open"),
        prevent_initial_call=True,
    )(toggle_pair)
