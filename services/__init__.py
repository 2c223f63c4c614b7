"""Attention Explorer's services: models, attention extraction, caching and analyses. No Dash here.

The public API::

    from services import extract_attention
    result = extract_attention("The cat sat on the mat because it was tired.")
"""

from .config import Settings, configure, get_settings
from .errors import AttentionExplorerError, InputError, ModelLoadError, ModelNotAllowedError, RateLimitedError
from .extraction import extract_attention
from .forward import AttentionResult

__all__ = [
    "AttentionExplorerError",
    "AttentionResult",
    "InputError",
    "ModelLoadError",
    "ModelNotAllowedError",
    "RateLimitedError",
    "Settings",
    "configure",
    "extract_attention",
    "get_settings",
]
