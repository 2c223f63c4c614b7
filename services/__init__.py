"""Attention Explorer's services: models, attention extraction, caching and analyses. No Dash here.

The public API::

    from services import extract_attention
    result = extract_attention("The cat sat on the mat because it was tired.")
    result.value_norms               # (layers, heads, seq): how large a vector each token hands on
    inside_head("The cat sat.", layer=2, head=5, query=3)   # one query's q, k, q·k/√d, softmax
"""

from .config import Settings, configure, get_settings
from .errors import AttentionExplorerError, InputError, ModelLoadError, ModelNotAllowedError, RateLimitedError
from .extraction import extract_attention
from .forward import AttentionResult
from .inside import InsideHead, inside_head

__all__ = [
    "AttentionExplorerError",
    "AttentionResult",
    "InputError",
    "InsideHead",
    "ModelLoadError",
    "ModelNotAllowedError",
    "RateLimitedError",
    "Settings",
    "configure",
    "extract_attention",
    "get_settings",
    "inside_head",
]
