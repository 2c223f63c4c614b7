"""``ViewSpec``: the one declaration of a view. Each view's module ends with its ``VIEW``; the registry
(``callbacks.registry``) lists them in tab order, and everything that needs to know the views reads it:
the router, the URL state, the exports, the boundary, the layout and the browser (through the
``data-views`` attribute of the page's ``ae-i18n`` element)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ViewSpec:
    """What a view is, in one place.

    - ``name``: its name in URLs (``view=heatmap``, a contract), in file names and in ``view_numbers``;
    - ``tab``: the id of its tab (``components.ids.TAB_*``, a contract);
    - ``outputs``: the router outputs it draws, by name (``dash.Output``), and ``main``, the name of the
      one holding its main figure (exported as PNG, SVG and HTML), whose graph id is ``graph``;
    - ``depends``: the router inputs it reads (a change of any other draws nothing);
    - ``square_only``: why it cannot draw rectangular (cross) attention, "" when it can;
    - ``uses_mode``: whether Rollout and value norms change it (False: raw attention whatever the mode);
    - ``render(view, state, triggered) -> outputs`` and ``placeholder(message) -> outputs``;
    - ``csv(result, state, view, max_rows) -> pieces of text``: the numbers behind it, checked before the
      first piece (raises ``Unavailable`` to say why not), so a download can stream them;
    - ``file_head``: whether its file names name a layer and head (not for whole-model views);
      ``default_head``: the head it shows when "All heads" or "Mean of heads" is chosen (Inside a head:
      head 0), named so in files; ``file_extra(state) -> str | None``: a part it adds (Generation: the step);
    - ``html_figures``: the outputs its HTML export holds, in order (default: its main figure alone);
    - ``direct``: whether the page may ask for it straight from its own event (``POST _ae-view``,
      ``callbacks.router.direct``; assets/23-gate.js draws the main figure with plotly.js and hands the other
      outputs to Dash): views whose answer is one figure and a notice. The others go through Dash.
    """

    name: str
    tab: str
    outputs: dict[str, Any]
    main: str
    graph: str
    depends: frozenset[str]
    render: Callable[..., dict]
    placeholder: Callable[[str], dict]
    csv: Callable[..., Iterable[str]]
    square_only: str = ""
    uses_mode: bool = True
    file_head: bool = True
    default_head: int | None = None
    file_extra: Callable[[Any], str | None] | None = None
    html_figures: tuple[str, ...] = ()
    direct: bool = False

    def __post_init__(self) -> None:
        if self.main not in self.outputs:
            raise ValueError(f"view {self.name}: its main figure {self.main!r} is not one of its outputs")
        if not self.html_figures:
            object.__setattr__(self, "html_figures", (self.main,))
        if any(name not in self.outputs for name in self.html_figures):
            raise ValueError(f"view {self.name}: its HTML figures {self.html_figures} are not all its outputs")
