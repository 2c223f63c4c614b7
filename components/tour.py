"""The guided tour of the page for a first visit (driver.js, served from ``assets/``).

``TOUR_STEPS`` says, in plain words, what each part of the page shows; ``tour_components()`` gives the
header's "Tour" button, the steps and button labels in the page's language (as JSON in ``data-*``
attributes of a hidden element, read by ``assets/11-tour.js``), and the small offer shown once on a
first visit. The browser remembers in ``localStorage`` that the tour was closed or the offer declined,
and never offers it again; the button always starts it.

Call ``tour_components()`` while the page is being made (it translates with ``_``), never at import.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import dash_bootstrap_components as dbc
from dash import html

from .i18n import N_, _, translate

TOUR_BUTTON = "tour-button"
TOUR_DATA = "tour-data"
TOUR_OFFER = "tour-offer"
TOUR_OFFER_START = "tour-offer-start"
TOUR_OFFER_DISMISS = "tour-offer-dismiss"
STORAGE_KEY = "attention-explorer.tour"  # localStorage: "done" once the tour was closed or declined


class TourStep(NamedTuple):
    """One stop of the tour: the element it points at (a CSS selector), a title and a short text.

    ``tab``: the label of a tab of the view tabs; the step then points at that tab's link inside
    ``selector`` (the links have no stable id, and their text is translated like the label here), and
    opens that tab, so the person sees what the step talks about.
    ``side``: where the popover goes beside the element (driver.js: top, right, bottom or left; None lets
    driver.js choose). The sidebar's steps put it on the right, so it never covers the Analyze button."""

    selector: str
    title: str
    text: str
    tab: str | None = None
    side: str | None = None


TOUR_STEPS = (
    TourStep("#text-input", N_("Tokens"), N_(
        "A model does not read whole words. It cuts your text into small pieces called tokens: a word, part "
        "of a word, a Chinese character or a punctuation mark. Type a sentence here and press Analyze."),
        side="right"),
    TourStep("#head-select", N_("Attention heads"), N_(
        "For every token, the model decides how much to look at each other token: that is attention. A "
        "head is one way of looking, and each layer has several heads side by side. Pick one here, or see "
        "them all."), side="right"),
    TourStep("#layer-slider", N_("Layers"), N_(
        "The model reads the text again and again, in layers, each one building on the one before. Move "
        "this slider to see the attention of another layer."), side="right"),
    TourStep("#head-grid", N_("Reading the grid"), N_(
        "Each small square is one head. Its rows are the tokens that look, its columns the tokens they look "
        "at: the brighter a cell, the more attention. Click a square to open that head.")),
    TourStep("#view-tabs", N_("Arcs"), N_(
        "The same attention drawn as lines from token to token: thicker, darker lines carry more attention. "
        "Point at a token to see only its lines."), tab=N_("Arcs")),
    TourStep("#view-tabs", N_("Follow one word"), N_(
        "Token focus follows one token through all the layers. Pick “it” in “The cat sat on the mat "
        "because it was tired.” (or 它 in the Chinese example) and see, layer by layer, which words it looks "
        "at: does it find “cat” (猫)?"), tab=N_("Token focus")),
    TourStep(".ae-footer", N_("A clue, not an explanation"), N_(
        "Attention shows where a model looks, not why it gives its answer. Read it as one clue among "
        "others, not as the model's reasons.")),
)


def tour_steps_data(steps: tuple[TourStep, ...] = TOUR_STEPS) -> list[dict]:
    """The steps in the current request's language, as plain data for the browser."""
    data = []
    for step in steps:
        item = {"element": step.selector, "title": translate(step.title), "text": translate(step.text)}
        if step.tab:
            item["tab"] = translate(step.tab)
        if step.side:
            item["side"] = step.side
        data.append(item)
    return data


def tour_labels() -> dict[str, str]:
    """The tour's button labels in the current request's language. ``progress`` keeps ``{current}`` and
    ``{total}``, which the browser fills in."""
    return {
        "next": _("Next"),
        "previous": _("Back"),
        "done": _("Done"),
        "close": _("Close"),
        "progress": _("{current} of {total}"),
    }


def tour_components(offer_under_automation: bool = False) -> list:
    """The header's tour pieces, built for one page (translated now): the Tour button, the hidden data
    element the browser script reads, and the first-visit offer (hidden until the script shows it).

    Browsers driven by automation (``navigator.webdriver``: tests, the screenshot script) are not offered
    the tour unless ``offer_under_automation``; the button works for them as for anyone.
    """
    return [
        dbc.Button(_("Tour"), id=TOUR_BUTTON, color="primary", outline=True, size="sm", n_clicks=0,
                   className="ae-tour-button", title=_("A one-minute tour of the page")),
        html.Div(id=TOUR_DATA, hidden=True, **{
            "data-steps": json.dumps(tour_steps_data(), ensure_ascii=False),
            "data-labels": json.dumps(tour_labels(), ensure_ascii=False),
            "data-storage-key": STORAGE_KEY,
            "data-offer-under-automation": "true" if offer_under_automation else "false",
        }),
        html.Div(id=TOUR_OFFER, className="ae-tour-offer", hidden=True, role="region",
                 **{"aria-label": _("Tour of the page"), "aria-live": "polite"}, children=[
            html.P(_("New here? Take a one-minute tour of the page."), className="mb-2"),
            html.Div(className="d-flex gap-2", children=[
                html.Button(_("Start the tour"), id=TOUR_OFFER_START, type="button", className="btn btn-primary btn-sm"),
                html.Button(_("No thanks"), id=TOUR_OFFER_DISMISS, type="button",
                            className="btn btn-outline-secondary btn-sm"),
            ]),
        ]),
    ]
