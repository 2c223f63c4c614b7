"""Exports of figures (issue 11): file names, image-download options, and standalone HTML files.

Plain Python over the figure dicts of ``components.figures`` and ``components.analysis_figures``; no
Dash, no torch.

- ``export_filename("all-MiniLM-L6-v2", "heatmap", 3, 5, "svg")`` -> ``all-MiniLM-L6-v2_layer3_head5_heatmap.svg``.
- ``graph_config(...)`` / ``download_image_options(...)``: what ``dcc.Graph(config=...)``'s camera button and
  ``Plotly.downloadImage(gd, options)`` need to save PNG or SVG under that name. The browser draws the
  file: the attention pictures (palette PNGs in ``image`` traces) go into an SVG as
  ``<image href="data:image/png;base64,...">`` elements beside the vector text (tokens, titles), so an
  SVG opens anywhere and its text stays text (tests/browser/test_export_browser.py checks this in Chromium).
- ``figure_html(figure, title=..., metadata=...)``: one HTML file that opens offline with no server:
  plotly.js inlined (the app's own cartesian bundle, 1.5 MB, or plotly's full bundle), the figure,
  a title and what it shows. ``offline_figure`` is the figure made to stand alone: hover text computed
  in Python (the app computes it in the browser, assets/21-hover.js), a head cut out of a grid
  picture, no pictures kept for browser-side layer changes.
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import images
from .figures import arc_traces, safe_label
from .i18n import _

IMAGE_FORMATS = ("png", "svg", "jpeg", "webp")
EXTENSIONS = IMAGE_FORMATS + ("csv", "json", "html")
HOVER_MAX_CELLS = 40_000  # pixels a picture may have for hover text in a standalone figure (one string each)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ASSETS = Path(__file__).resolve().parent.parent / "assets"


# ============================================================================================ names


def safe_part(value: object, fallback: str = "x", limit: int = 80) -> str:
    """``value`` as a piece of a file name: only ``A-Z a-z 0-9 . _ -``, no leading dot or dash."""
    text = _UNSAFE.sub("_", str(value)).strip("._-")
    text = re.sub(r"_+", "_", text)[:limit].strip("._-")
    return text or fallback


def model_slug(model_id: str | None) -> str:
    """A model id for a file name: a hub id keeps its owner (``org_name``); a local folder gives its
    last part only, so a path on the server never ends up in someone's file name."""
    model = str(model_id or "").strip().rstrip("/\\")
    if model.startswith(("/", "~", ".")) or "\\" in model or re.match(r"^[A-Za-z]:", model):
        model = re.split(r"[/\\]", model)[-1]
    return safe_part(model, "model")


def head_part(head: int | str | None) -> str:
    """``head5``, ``mean`` (None or "mean"), ``allheads`` or ``rollout``."""
    if head is None or head == "mean":
        return "mean"
    if head == "all":
        return "allheads"
    if isinstance(head, (int, np.integer)) and not isinstance(head, bool):
        return f"head{int(head)}"
    return safe_part(head, "head")


def file_stem(model_id: str | None, view: str, layer: int | None = None, head: int | str | None = "",
              extra: str | None = None) -> str:
    """The name without extension: ``<model>_layer<l>_<head>_<view>[_<extra>]``; a part given as None
    (layer) or "" (head) is left out."""
    parts = [model_slug(model_id)]
    if layer is not None:
        parts.append(f"layer{int(layer)}")
    if head != "":
        parts.append(head_part(head))
    parts.append(safe_part(view, "view"))
    if extra:
        parts.append(safe_part(extra))
    return "_".join(parts)


def export_filename(model_id: str | None, view: str, layer: int | None = None, head: int | str | None = "",
                    ext: str = "svg", extra: str | None = None) -> str:
    """A meaningful file name, e.g. ``all-MiniLM-L6-v2_layer3_head5_heatmap.svg``."""
    ext = str(ext).lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise ValueError(f"unknown file type {ext!r}; one of {', '.join(EXTENSIONS)}")
    return f"{file_stem(model_id, view, layer, head, extra)}.{ext}"


def download_image_options(filename: str, fmt: str = "png", scale: float = 2, width: int | None = None,
                           height: int | None = None) -> dict:
    """Options for ``Plotly.downloadImage(gd, options)`` / ``Plotly.toImage``, and the modebar's
    ``toImageButtonOptions``: ``filename`` without its extension (plotly.js adds it)."""
    fmt = str(fmt).lower()
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; one of {', '.join(IMAGE_FORMATS)}")
    stem = filename.rsplit(".", 1)[0] if filename.lower().endswith(tuple("." + e for e in EXTENSIONS)) else filename
    options: dict[str, Any] = {"format": fmt, "filename": safe_part(stem, "figure", limit=200), "scale": scale}
    if width:
        options["width"] = int(width)
    if height:
        options["height"] = int(height)
    return options


def graph_config(filename: str, fmt: str = "png", scale: float = 2, **config) -> dict:
    """A ``dcc.Graph`` ``config`` whose camera button saves ``filename`` in ``fmt`` (extra keys as given),
    without plotly.js 4's "Share chart" button (an upload to Plotly Cloud)."""
    return {"displaylogo": False, "showSendToCloud": False, **config,
            "toImageButtonOptions": download_image_options(filename, fmt, scale)}


# ============================================================================================ standalone figures


def _picture(source: str) -> np.ndarray:
    """The palette indices of a ``data:image/png;base64,...`` picture made by ``components.images``."""
    from PIL import Image

    prefix = "data:image/png;base64,"
    if not isinstance(source, str) or not source.startswith(prefix):
        raise ValueError("not a PNG data URI")
    with Image.open(io.BytesIO(base64.b64decode(source[len(prefix):]))) as image:
        if image.mode != "P":
            raise ValueError("not a palette picture")
        return np.asarray(image)


def _weight_text(levels: np.ndarray, meta: dict) -> np.ndarray:
    """The weight each palette index stands for, as text with 3 decimals (background: empty)."""
    steps = max(1, int(meta.get("levels", images.LEVELS - 1)))
    vmax = float(meta.get("vmax", 1.0))
    table = np.array([f"{i / steps * vmax:.3f}" for i in range(256)], dtype=object)
    table[images.BACKGROUND] = ""
    return table[levels]


def _crop_grid_heatmap(figure: dict) -> None:
    """A heatmap drawn from a head grid's picture (placed so one head covers the axes): the picture is
    cut down to that head, so the file holds nothing that is not shown."""
    meta = figure["layout"]["meta"]
    trace = figure["data"][0]
    rows, cols = len(meta.get("queries", [])), len(meta.get("keys", []))
    picture = _picture(trace["source"])
    top, left = -int(trace.get("y0", 0)), -int(trace.get("x0", 0))
    tile = picture[top:top + rows, left:left + cols]
    if tile.shape != (rows, cols):
        return
    trace.update(source=images.png_data_uri(tile), x0=0, y0=0)
    for key in ("grid", "titles", "key"):
        meta.pop(key, None)


def _hover(trace: dict, text: np.ndarray) -> None:
    trace.update(text=text.tolist(), hovertemplate="%{text}<extra></extra>", hoverinfo="text")


def _heatmap_hover(figure: dict) -> None:
    meta, trace = figure["layout"]["meta"], figure["data"][0]
    levels = _picture(trace["source"])
    if levels.size > HOVER_MAX_CELLS:
        return
    queries = [safe_label(str(q)) for q in meta.get("queries", [])]
    keys = [safe_label(str(k)) for k in meta.get("keys", [])]
    if levels.shape != (len(queries), len(keys)):
        return
    weights = _weight_text(levels, meta)
    text = np.array([[f"{q} → {k}: {weights[r, c]}" for c, k in enumerate(keys)] for r, q in enumerate(queries)],
                    dtype=object)
    _hover(trace, text)


def _grid_hover(figure: dict) -> None:
    meta, trace = figure["layout"]["meta"], figure["data"][0]
    levels = _picture(trace["source"])
    if levels.size > HOVER_MAX_CELLS:
        return
    tokens = [safe_label(str(t)) for t in meta.get("tokens", [])]
    cells, block, band = int(meta["cells"]), int(meta["block"]), int(meta["band"])
    sx, sy, columns = int(meta["stride_x"]), int(meta["stride_y"]), int(meta["columns"])
    names = meta.get("tile_names") or [_("tile {tile}").format(tile=t) for t in meta.get("tiles", [])]
    seq = int(meta.get("seq", len(tokens)))

    span = _("tokens {first}–{last}")

    def unit(i: int) -> str:
        if block == 1:
            return tokens[i] if i < len(tokens) else str(i)
        last = min(seq, (i + 1) * block) - 1
        return span.format(first=i * block, last=last)

    weights = _weight_text(levels, meta)
    text = np.full(levels.shape, "", dtype=object)
    for y in range(levels.shape[0]):
        row, inside_y = divmod(y, sy)
        inside_y -= band
        if not 0 <= inside_y < cells:
            continue
        for x in range(levels.shape[1]):
            column, inside_x = divmod(x, sx)
            index = row * columns + column
            if inside_x >= cells or column >= columns or index >= len(names) or not weights[y, x]:
                continue
            text[y, x] = f"{names[index]} · {unit(inside_y)} → {unit(inside_x)}: {weights[y, x]}"
    _hover(trace, text)


def _overview_hover(figure: dict) -> None:
    meta, trace = figure["layout"]["meta"], figure["data"][0]
    levels = _picture(trace["source"])
    if levels.size > HOVER_MAX_CELLS:
        return
    stride, cells = int(meta["stride"]), int(meta["cells"])
    ys, xs = np.divmod(np.arange(levels.shape[0]), stride), np.divmod(np.arange(levels.shape[1]), stride)
    text = np.full(levels.shape, "", dtype=object)
    cell_text = _("layer {layer} · head {head}")
    for y, (layer, inside_y) in enumerate(zip(*ys)):
        if inside_y >= cells:
            continue
        for x, (head, inside_x) in enumerate(zip(*xs)):
            if inside_x < cells and levels[y, x] != images.BACKGROUND:
                text[y, x] = cell_text.format(layer=layer, head=head)
    _hover(trace, text)


def offline_figure(figure: dict) -> dict:
    """A copy of a dashboard figure that needs none of the app's browser code: hover text for the
    attention pictures is computed here (for pictures of at most ``HOVER_MAX_CELLS`` pixels), a heatmap
    drawn from a grid picture is cut to its head, and the pictures kept for browser-side layer changes
    (``layout.meta.sources``) are dropped. Figures of other kinds are copied as they are."""
    figure = copy.deepcopy(dict(figure))
    layout = figure.setdefault("layout", {})
    meta = layout.get("meta")
    if not isinstance(meta, dict) or not figure.get("data"):
        return figure
    for key in ("sources", "titles", "key"):
        if meta.get("kind") == "head-grid":
            meta.pop(key, None)
    if meta.get("kind") == "arcs":  # the page draws the arcs on its canvas: here they are SVG lines
        figure["data"] = list(figure["data"]) + arc_traces(figure)
        meta.pop("lines", None)
    if meta.get("kind") == "arcs":  # clicking a token does nothing without the app
        for trace in figure["data"]:
            if isinstance(trace, dict) and isinstance(trace.get("hovertemplate"), str):
                trace["hovertemplate"] = re.sub(r"<extra>[^<]*</extra>", "<extra></extra>", trace["hovertemplate"])
    first = figure["data"][0]
    if not (isinstance(first, dict) and first.get("type") == "image" and "source" in first):
        return figure
    try:
        if meta.get("kind") == "heatmap":
            if "grid" in meta:
                _crop_grid_heatmap(figure)
            _heatmap_hover(figure)
        elif meta.get("kind") == "head-grid":
            _grid_hover(figure)
        elif meta.get("kind") == "overview":
            _overview_hover(figure)
    except (KeyError, ValueError, TypeError, OSError):  # a picture or geometry not as expected: no hover text
        pass
    return figure


# ============================================================================================ HTML


def _cartesian_bundle() -> tuple[str, str] | None:
    """The app's own plotly.js bundle (assets/plotly-cartesian-<version>.min.js) and its version."""
    found = sorted(_ASSETS.glob("plotly-cartesian-*.min.js")) if _ASSETS.is_dir() else []
    if not found:
        return None
    version = found[-1].name[len("plotly-cartesian-"):-len(".min.js")]
    return found[-1].read_text(encoding="utf-8"), version


def _script(source: str) -> str:
    return "<script>" + re.sub(r"</(script)", r"<\\/\1", source, flags=re.I) + "</script>"


def figure_html(figure: dict | Any, *, title: str | None = None, metadata: dict[str, Any] | None = None,
                filename: str | None = None, plotlyjs: str = "cartesian", offline: bool = True) -> str:
    """One HTML page holding ``figure`` (or a list of figures, one under the other: a view drawn in
    several, such as Inside a head's steps) that opens offline, with no server.

    plotly.js is inlined: ``plotlyjs="cartesian"`` (default) the app's own bundle (every trace type the
    views draw, 1.5 MB), ``"full"`` plotly's full bundle from the plotly package (4.8 MB, any figure).
    ``title`` heads the page (default: the figure's title without markup); ``metadata`` (model, text,
    layer, head ... as given) is listed under it and kept as JSON in
    ``<script type="application/json" id="attention-explorer-metadata">``. ``filename`` names the
    camera button's PNG. With ``offline`` (default), a dashboard figure goes through ``offline_figure``.
    No URL is loaded: no ``<script src>``, no stylesheet, no font.
    """
    import plotly.io as pio
    from plotly.offline import get_plotlyjs_version

    figures = [f.to_plotly_json() if hasattr(f, "to_plotly_json") else f
               for f in (figure if isinstance(figure, (list, tuple)) else [figure])]
    if not figures:
        raise ValueError("no figure to write")
    figures = [offline_figure(f) if offline else copy.deepcopy(f) for f in figures]
    title = title or next((t for t in (_plain_title(f.get("layout", {})) for f in figures) if t), "") \
        or "Attention Explorer figure"
    # No "Share chart" button: plotly.js 4 would offer to upload the figure (and its text) to Plotly Cloud.
    config = {"displaylogo": False, "responsive": True, "showSendToCloud": False}
    if filename:
        config["toImageButtonOptions"] = download_image_options(filename, "png")
    bundle = _cartesian_bundle() if plotlyjs == "cartesian" else None
    if plotlyjs not in ("cartesian", "full"):
        raise ValueError("plotlyjs must be 'cartesian' or 'full'")
    div = "\n".join(
        pio.to_html(f, config=config, include_plotlyjs=bundle is None and i == 0, full_html=False, validate=False,
                    default_width="100%", default_height=f"{int(f.get('layout', {}).get('height') or 500)}px")
        for i, f in enumerate(figures))
    if bundle is not None:
        script, version = bundle
        div = "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n" + _script(script) + "\n" + div
    else:
        version = get_plotlyjs_version()
    info = {"title": title, **(metadata or {}),
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(), "plotly.js": version}
    rows = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_show(v))}</dd>" for k, v in info.items()
                   if k != "title")
    metadata_json = json.dumps(info, ensure_ascii=True, default=str).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Attention Explorer">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: Lato, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", sans-serif; margin: 16px 24px; color: #212529; }}
h1 {{ font-size: 1.3rem; margin: 0 0 8px; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: .85rem; margin: 0 0 12px; }}
dt {{ color: #6c757d; }} dd {{ margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }}
footer {{ color: #6c757d; font-size: .8rem; margin-top: 8px; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<dl class="ae-metadata">{rows}</dl>
{div}
<script type="application/json" id="attention-explorer-metadata">{metadata_json}</script>
<footer>Made with Attention Explorer. This file opens without a network: plotly.js {html.escape(version)} is
included in it.</footer>
</body>
</html>
"""


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _plain_title(layout: dict) -> str:
    title = layout.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    if not isinstance(text, str):
        return ""
    return html.unescape(re.sub(r"<[^>]*>", "", text)).strip()
