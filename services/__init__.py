"""Attention Explorer's services: models, attention extraction, caching and analyses. No Dash here.

The public API::

    from services import extract_attention
    result = extract_attention("The cat sat on the mat because it was tired.")
    result.value_norms               # (layers, heads, seq): how large a vector each token hands on
    inside_head("The cat sat.", layer=2, head=5, query=3)   # one query's q, k, q·k/√d, softmax

    # Encoder-decoder models (issue 13): encoder, decoder and cross-attention; a target, or one written greedily
    r = extract_attention("The cat sat.", model_id="path/to/marian", target="Le chat était assis.")
    r.cross_attentions                # (layers, heads, target tokens, source tokens)
    # Decoder-only models: continue a text by n tokens, the attention of every step
    g = generate_steps("The cat sat on the", 5, model_id="gpt2")
    g.step_attention(1)               # (layers, heads, seq): generated token 1 over the prompt and itself
    kinds_available(r), attention_of(r, "cross")   # services.kinds: one kind's matrices and tokens
"""

from .analyses.kinds import KindView, attention_of, kinds_available, pair_block
from .config import Settings, configure, get_settings
from .errors import AttentionExplorerError, InputError, ModelLoadError, ModelNotAllowedError, RateLimitedError
from .extraction import extract_attention, generate_steps
from .inside import InsideHead, inside_head
from .result import AttentionResult

__all__ = [
    "AttentionExplorerError",
    "AttentionResult",
    "InputError",
    "InsideHead",
    "KindView",
    "ModelLoadError",
    "ModelNotAllowedError",
    "RateLimitedError",
    "attention_of",
    "Settings",
    "configure",
    "extract_attention",
    "generate_steps",
    "get_settings",
    "inside_head",
    "kinds_available",
    "pair_block",
]
