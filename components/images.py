"""Attention maps as palette PNGs for Plotly ``image`` traces: one byte a cell, drawn by the browser.

An ``image`` trace whose ``source`` is a PNG is the cheapest thing plotly.js draws (the browser decodes
the PNG natively): measured here, 27 ms for a head grid at 128 tokens against 65 ms for one heatmap
trace and 123 ms for twelve. The PNG is a palette image: each pixel is an index 0-254 into Viridis
(the weight times 254, rounded) and index 255 is the background (the gaps between tiles), so the PNG
carries the quantised weights exactly and the browser can read a weight back from a pixel's colour
(assets/21-hover.js does this for the hover tooltip only when the exact map, ``GET exact/<what>``, cannot
be had: marked "≈").
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

import numpy as np
from plotly.colors import hex_to_rgb, sequential

LEVELS = 255  # palette entries for weights: 0 .. 254
BACKGROUND = 255  # palette index of the gaps between tiles
BACKGROUND_RGB = (255, 255, 255)
COLORSCALE_NAME = "Viridis"


@lru_cache(maxsize=1)
def viridis_palette() -> np.ndarray:
    """``(256, 3)`` uint8: Viridis at ``LEVELS`` evenly spaced weights, then the background colour.

    Interpolated linearly in RGB between plotly's Viridis stops, as plotly.js does for a heatmap's
    colour scale, so the colour bar drawn by plotly matches the image. Every entry is a distinct
    colour (where rounding makes two equal, the later one's red moves by one step, which no eye
    sees), so a pixel's colour names its level exactly.
    """
    stops = np.array([hex_to_rgb(c) for c in sequential.Viridis], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(stops))
    levels = np.linspace(0.0, 1.0, LEVELS)
    rgb = np.rint(np.stack([np.interp(levels, positions, stops[:, channel]) for channel in range(3)], axis=1))
    seen: set[tuple] = {BACKGROUND_RGB}
    for colour in rgb:
        while tuple(colour) in seen:
            colour[0] += 1 if colour[0] < 255 else -1
        seen.add(tuple(colour))
    palette = np.vstack([rgb, np.array(BACKGROUND_RGB, dtype=np.float64)[None]])
    return palette.astype(np.uint8)


def colorscale() -> list[list]:
    """The palette's weight levels as a plotly colour scale (for the colour bar)."""
    palette = viridis_palette()[:LEVELS]
    return [[i / (LEVELS - 1), "rgb({},{},{})".format(*palette[i])] for i in range(0, LEVELS, 17)] + \
        [[1.0, "rgb({},{},{})".format(*palette[LEVELS - 1])]]


def image_meta(vmax: float = 1.0) -> dict:
    """What the browser needs to read a weight back from a pixel: the palette and its scale."""
    return {"palette": viridis_palette().ravel().tolist(), "levels": LEVELS - 1, "vmax": vmax}


def to_levels(weights: np.ndarray, vmax: float = 1.0) -> np.ndarray:
    """Weights in [0, vmax] as palette indices 0-254 (NaN, e.g. a masked cell, becomes 0)."""
    scaled = np.nan_to_num(np.asarray(weights, dtype=np.float32), nan=0.0) * ((LEVELS - 1) / max(vmax, 1e-12))
    return np.rint(np.clip(scaled, 0, LEVELS - 1)).astype(np.uint8)


def png_data_uri(indices: np.ndarray, *, compress_level: int = 3) -> str:
    """A 2-D uint8 array of palette indices as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    indices = np.ascontiguousarray(indices, dtype=np.uint8)
    if indices.ndim != 2 or indices.size == 0:
        raise ValueError(f"an image needs a non-empty 2-D array, got shape {indices.shape}")
    image = Image.fromarray(indices)  # uint8 2-D: mode "L", made "P" by the palette
    image.putpalette(viridis_palette().ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def tile(maps: np.ndarray, columns: int, gap: int = 1, band: int = 0) -> tuple[np.ndarray, int, int]:
    """``(count, h, w)`` level maps tiled into one image, ``columns`` a row, ``gap`` background pixels
    between columns and a background ``band`` above each row (room for the tiles' titles).

    Returns (image, stride_x, stride_y): tile ``i`` covers columns ``c * stride_x .. + w`` and rows
    ``r * stride_y + band .. + h``, with ``r, c = divmod(i, columns)``.
    """
    count, height, width = maps.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    stride_x, stride_y = width + gap, height + band + gap
    image = np.full((rows * stride_y - gap, columns * stride_x - gap), BACKGROUND, dtype=np.uint8)
    for i in range(count):
        r, c = divmod(i, columns)
        top = r * stride_y + band
        image[top:top + height, c * stride_x:c * stride_x + width] = maps[i]
    return image, stride_x, stride_y
