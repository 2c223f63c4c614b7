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
