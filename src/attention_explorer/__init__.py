"""Attention Explorer, installed from its wheel under this one name.

The wheel holds the repository's folders as subpackages (``attention_explorer.services``,
``.components``, ``.callbacks``), ``app.py`` as ``attention_explorer.app``, the ``assets/`` folder,
and gunicorn's configuration as ``attention_explorer.gunicorn_conf``; nothing else is put at the top
of site-packages. In a checkout, the same code is imported as ``services``, ``app`` ... (``setup.py``
rewrites those imports when it builds the wheel). The Python API::

    from attention_explorer import extract_attention        # installed
    from services import extract_attention                  # in a checkout (its folder on sys.path)

Figures for notebooks (``plotly.graph_objects.Figure``; ``fig.show()`` renders inline in Jupyter) and
the dashboard in a notebook cell::

    from attention_explorer import head_grid, head_heatmap, arcs, overview, atlas, token_focus, inside
    head_heatmap(result, layer=2, head=5).show()
    show_dashboard()

Run the app with the ``attention-explorer`` command (``python -m attention_explorer``), or under
gunicorn: ``gunicorn -c python:attention_explorer.gunicorn_conf attention_explorer.app:server``.
"""

from .components.notebook import (
    arcs,
    atlas,
    head_grid,
    head_heatmap,
    inside,
    message_figure,
    overview,
    show_dashboard,
    token_focus,
)
from .services import (
    AttentionExplorerError,
    AttentionResult,
    InputError,
    ModelLoadError,
    ModelNotAllowedError,
    RateLimitedError,
    Settings,
    configure,
    extract_attention,
    get_settings,
)

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
    # notebook figures and the dashboard in a cell (components.notebook)
    "arcs",
    "atlas",
    "head_grid",
    "head_heatmap",
    "inside",
    "message_figure",
    "overview",
    "show_dashboard",
    "token_focus",
]
