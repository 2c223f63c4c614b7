"""The arc view's callback on a decoder's continuation: the generated tokens are marked."""

from __future__ import annotations

import numpy as np

from attention_explorer.callbacks import arcs, registry
from attention_explorer.callbacks.boundary import Dims, ViewState
from attention_explorer.services import generate_steps
from attention_explorer.services.analyses.views import View, ViewOptions
from tests.services.analyses.test_arcs import offered  # noqa: F401 - a fixture


def test_generated_tokens_are_marked_in_the_arcs(offered, llama):
    result = generate_steps("the cat sat on", 4, model_id=llama)
    assert result.generated_mask is not None and result.generated_mask.sum() == 4
    view = View(result, ViewOptions())
    state = ViewState.parse({"tab": "tab-arcs", "layer": 0, "head": "all", "top_k": 3, "min_weight": 0.0},
                            Dims(result.num_layers, result.num_heads, result.seq_len), registry.TABS)
    out = arcs.render(view, state, frozenset({"handle"}))
    meta = out["arcs"]["layout"]["meta"]
    assert meta["generated"] == list(np.flatnonzero(result.generated_mask))
    assert "generated" in str(out["arc_hint"])


def test_the_arcs_kept_a_row_cover_every_choice_the_page_offers():
    from attention_explorer.components.layout import TOP_K_CHOICES
    from attention_explorer.services.analyses.arcs import ARC_TOP_MAX

    assert max(TOP_K_CHOICES) <= ARC_TOP_MAX


def test_a_window_move_sends_the_arcs_alone_and_compactly(offered, llama):
    """Moving the window (or changing top k, weight, the token clicked) leaves the head chips as they are;
    a head or layer change sends them. The arcs travel as typed arrays: a few dozen bytes an arc."""
    import json

    from attention_explorer.services import extract_attention
    from tests import tiny_models as tm

    result = extract_attention(" ".join(tm.long_text(200).split()[:200]), model_id=llama)
    view = View(result, ViewOptions(), key="window-move")
    dims = Dims(result.num_layers, result.num_heads, result.seq_len)

    def state(**values):
        return ViewState.parse({"tab": "tab-arcs", "layer": 0, "head": "all", "top_k": 3, "min_weight": 0.0,
                                **values}, dims, registry.TABS)

    moved = arcs.render(view, state(arc_start=5), frozenset({"arc_start"}))
    assert "arc_legend" not in moved and moved["arcs"]["layout"]["meta"]["first"] == 5
    for changed in ({"top_k"}, {"min_weight"}, {"arc_focus"}):
        assert "arc_legend" not in arcs.render(view, state(arc_start=5), frozenset(changed))
    for changed in ({"head"}, {"layer"}, {"tab"}, {"handle"}, {"arc_start", "head"}):
        assert len(arcs.render(view, state(arc_start=5), frozenset(changed))["arc_legend"]) > 0
    meta = moved["arcs"]["layout"]["meta"]
    count = meta["arcs"] + meta["outside"]
    assert count > 500 and len(json.dumps(moved["arcs"])) < 60 * count
