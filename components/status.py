"""The status area: token-count badges, truncation notice, unknown-token warning, the normalisation
check, error alerts. Everything in the page's language."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from .i18n import _, translate

UNKNOWN_WARNING_SHARE = 0.1
MAX_SHOWN_TARGET = 400  # characters of a written target the status shows


def error_alert(title: str, message: str) -> dbc.Alert:
    """An error in plain words. Dash renders text as text, so HTML in a message stays literal."""
    return dbc.Alert([html.Strong(title + _(". ")), html.Span(message)], color="danger", className="mb-2",
                     dismissable=True)


def _unknown_warning(summary: dict) -> dbc.Alert:
    text = _("{share} of the tokens are unknown to this model ({count} shown as {unk}): it does not know this "
             "text's language or symbols well, so its attention says little.").format(
        share=f"{summary['unknown_share']:.0%}", count=summary["unknown_count"], unk=summary["unk_token"])
    advice = []
    if summary.get("knows"):
        advice.append(_("Pick a model that knows it: {models}.").format(models=", ".join(summary["knows"])))
    if summary.get("elsewhere"):
        advice.append(_("Offered but not on this machine: {models}. To add them, run “make models” on a machine "
                        "with network access and point ATTN_MODELS at the folders it prints (see the README).")
                      .format(models=", ".join(summary["elsewhere"])))
    if not advice:
        advice.append(_("Try a model trained on this language: add one with “make models” (see the README)."))
    return dbc.Alert([html.Div(text), *[html.Div(line, className="mt-1") for line in advice]],
                     color="warning", className="mb-2 py-2")


def cut_alerts(cuts) -> list:
    """A notice for each text longer than ``ATTN_MAX_CHARS``, cut to it (``callbacks.analyze.cut_to_limit``)."""
    return [dbc.Alert(
        _("The {what} has {count} characters; this server analyses at most {limit}, so only its first "
          "{kept} were analysed (the box still holds all of it).").format(
            what=translate(cut["what"]), count=f"{cut['count']:,}", limit=f"{cut['limit']:,}",
            kept=f"{cut['kept']:,}"),
        color="info", className="mb-2 py-2 ae-text-cut") for cut in cuts]


def status_children(summary: dict) -> list:
    """Badges and notices for a successful analysis. ``summary`` is plain data (see callbacks.analyze)."""
    badges = [
        dbc.Badge(_("{count} tokens").format(count=summary["tokens"]), color="primary", className="ae-badge",
                  id="token-count-badge"),
        dbc.Badge(summary["model_id"], color="secondary", className="ae-badge"),
        dbc.Badge(_("{layers} layers × {heads} heads").format(layers=summary["layers"], heads=summary["heads"]),
                  color="light", text_color="dark", className="ae-badge"),
    ]
    target = summary.get("target")
    if target:  # an encoder-decoder model: what its decoder read, and whether it wrote it
        badges[0].children = _("{count} source tokens").format(count=summary["tokens"])
        badges.insert(1, dbc.Badge(
            (_("{count} target tokens, written by the model") if target["generated"] else
             _("{count} target tokens")).format(count=target["tokens"]), color="primary", className="ae-badge",
            id="target-count-badge"))
        badges[-1].children = _("encoder {layers} layers × {heads} heads · decoder {dlayers} × {dheads}").format(
            layers=summary["layers"], heads=summary["heads"], dlayers=target["layers"], dheads=target["heads"])
        badges.append(dbc.Badge(_("encoder-decoder"), color="light", text_color="dark", className="ae-badge"))
    else:
        badges.append(dbc.Badge(_("causal (looks back only)") if summary["causal"] else _("bidirectional"),
                                color="light", text_color="dark", className="ae-badge"))
    if summary.get("generated_steps"):
        badges.append(dbc.Badge(_("{count} tokens written after the prompt").format(count=summary["generated_steps"]),
                                color="warning", text_color="dark", className="ae-badge"))
    if "norm_error" in summary:  # the best practice "check that attention weights are normalised", shown
        ok = summary["norm_ok"]
        badges.append(dbc.Badge(
            (_("✓ rows sum to 1 (largest error {value})") if ok else _("⚠ rows do not sum to 1 (largest error {value})"))
            .format(value=summary["norm_text"]), color="light" if ok else "warning",
            text_color="success" if ok else "dark", className="ae-badge", id="normalisation-badge",
            title=_("The largest |row sum − 1| over every layer, head and query of this analysis.")))
    children = [html.Div(className="d-flex flex-wrap gap-2 align-items-center mb-2", children=badges)]
    if target and target["generated"]:  # what the model wrote: otherwise only its tokens would show it
        written = target.get("text", "")
        children.append(html.Div(className="small mb-2 ae-written-target", children=[
            html.Span(_("The model wrote:"), className="fw-semibold me-1"),
            html.Span(f"“{written[:MAX_SHOWN_TARGET]}{'…' if len(written) > MAX_SHOWN_TARGET else ''}”"),
        ]))
    children.extend(cut_alerts(summary.get("cut") or ()))
    if summary["truncated"]:
        children.append(dbc.Alert(
            _("The text was cut to {tokens} tokens: the model reads at most {limit} and this text has {before}. "
              "The views show the first part.").format(tokens=summary["tokens"], limit=summary["limit"],
                                                       before=summary["tokens_before"]),
            color="info", className="mb-2 py-2",
        ))
    if summary["unknown_share"] >= UNKNOWN_WARNING_SHARE:
        children.append(_unknown_warning(summary))
    return children
