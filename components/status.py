"""The status area: token-count badges, truncation notice, unknown-token warning, error alerts."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

UNKNOWN_WARNING_SHARE = 0.1


def error_alert(title: str, message: str) -> dbc.Alert:
    """An error in plain words. Dash renders text as text, so HTML in a message stays literal."""
    return dbc.Alert([html.Strong(title + ". "), html.Span(message)], color="danger", className="mb-2",
                     dismissable=True)


def status_children(summary: dict) -> list:
    """Badges and notices for a successful analysis. ``summary`` is plain data (see callbacks.analyze)."""
    badges = html.Div(className="d-flex flex-wrap gap-2 align-items-center mb-2", children=[
        dbc.Badge(f"{summary['tokens']} tokens", color="primary", className="ae-badge", id="token-count-badge"),
        dbc.Badge(summary["model_id"], color="secondary", className="ae-badge"),
        dbc.Badge(f"{summary['layers']} layers × {summary['heads']} heads", color="light", text_color="dark",
                  className="ae-badge"),
        dbc.Badge("causal (looks back only)" if summary["causal"] else "bidirectional", color="light",
                  text_color="dark", className="ae-badge"),
    ])
    children = [badges]
    if summary["truncated"]:
        children.append(dbc.Alert(
            f"The text was cut to {summary['tokens']} tokens: the model reads at most {summary['limit']} "
            f"and this text has {summary['tokens_before']}. The views show the first part.",
            color="info", className="mb-2 py-2",
        ))
    if summary["unknown_share"] >= UNKNOWN_WARNING_SHARE:
        children.append(dbc.Alert(
            f"{summary['unknown_share']:.0%} of the tokens are unknown to this model ({summary['unknown_count']} "
            f"shown as {summary['unk_token']}): it does not know this text's language or symbols well, so its "
            "attention says little. Try a model trained on this language.",
            color="warning", className="mb-2 py-2",
        ))
    return children
