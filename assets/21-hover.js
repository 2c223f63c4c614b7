/* Hover tooltips of the attention pictures (grid, heatmap, overview): the weight is read back from the
 * pixel's palette colour, so no weights travel beside the picture. */
(function () {
    "use strict";
    const AE = window.AE;

    /* The palette index (0 .. levels) of the image pixel at (x, y): exact colour match, else nearest. */
    function pixelLevel(graphId, figure, x, y) {
        const gd = AE.graphDiv(graphId);
        const trace = gd && gd._fullData && gd._fullData[0];
        const canvas = trace && trace._canvas && trace._canvas.el;
        const meta = figure.layout.meta || {};
        if (!canvas || !meta.palette) { return null; }
        const image = figure.data[0];  // a heatmap may show one tile of a grid picture: shifted by x0, y0
        const px = x - Math.round(image.x0 || 0), py = y - Math.round(image.y0 || 0);
        const rgb = canvas.getContext("2d", {willReadFrequently: true}).getImageData(px, py, 1, 1).data;
        const palette = meta.palette;
        let best = null, bestDistance = Infinity;
        for (let i = 0; i <= meta.levels; i++) {
            const d = Math.abs(palette[3 * i] - rgb[0]) + Math.abs(palette[3 * i + 1] - rgb[1]) +
                Math.abs(palette[3 * i + 2] - rgb[2]);
            if (d < bestDistance) { best = i; bestDistance = d; if (d === 0) { break; } }
        }
        return bestDistance <= 12 ? best : null;
    }

    function weightText(graphId, figure, x, y) {
        const level = pixelLevel(graphId, figure, x, y);
        if (level === null) { return "?"; }
        const meta = figure.layout.meta;
        return (level * (meta.vmax || 1) / meta.levels).toFixed(2);
    }

    function hoverFor(graphId) {
        return function (hoverData, stored) {
            const hide = [false, AE.NO(), ""];
            /* the figure as drawn: the gate may have moved it on since Dash's prop (assets/23-gate.js) */
            const figure = AE.shownFigure(graphId, stored);
            const p = AE.firstPoint(hoverData);
            if (!p || !figure || !figure.layout || !figure.layout.meta || p.curveNumber !== 0) { return hide; }
            const meta = figure.layout.meta, words = AE.words();
            const x = Math.round(p.x), y = Math.round(p.y);
            if (meta.kind === "overview") {
                const cell = AE.overviewCell(meta, x, y);
                return cell ? [true, p.bbox, AE.fmt(words.overview_cell || "layer {layer} · head {head}",
                                                    {layer: cell.layer, head: cell.head})] : hide;
            }
            if (meta.kind === "heatmap" && meta.exact) {  /* a long text: exact values (29-zoom.js) */
                const text = AE.exactHover(meta, p.x, p.y);
                return text ? [true, p.bbox, text] : hide;
            }
            if (meta.kind === "heatmap") {
                const q = meta.queries[y], k = meta.keys[x];
                if (q === undefined || k === undefined) { return hide; }
                const share = weightText(graphId, figure, x, y);
                if (meta.row_scale && share !== "?") {  // weighted by value norm: the unscaled product too
                    const product = (Number(share) * meta.row_scale[y]).toFixed(3);
                    return [true, p.bbox, q + " → " + k + ": " + AE.fmt(words.value_share || "{share} (α·‖f(x)‖ = {product})",
                                                                         {share: share, product: product})];
                }
                return [true, p.bbox, q + " → " + k + ": " + share];
            }
            if (meta.kind !== "head-grid") { return hide; }
            const cell = AE.gridCell(meta, x, y);
            if (!cell) { return hide; }
            const name = (meta.tile_names && meta.tile_names[cell.tile]) || (meta.tile + " " + cell.id);
            if (meta.values) {  /* a long text: the block's exact value (29-zoom.js) */
                const text = AE.exactGridHover(meta, cell, name);
                return text ? [true, p.bbox, text] : hide;
            }
            const weight = weightText(graphId, figure, x, y);
            if (meta.block === 1) {
                const keys = meta.key_tokens || meta.tokens;
                return [true, p.bbox, name + " · " + meta.tokens[cell.query] + " → " + keys[cell.key] + ": " + weight];
            }
            const b = meta.block;
            const span = function (i, last) { return (i * b) + "–" + Math.min(last, i * b + b - 1); };
            return [true, p.bbox, AE.fmt(words.pooled_cell || "{tile} · tokens {query} → {key}: max {weight}",
                                         {tile: name, query: span(cell.query, meta.seq - 1), key: span(cell.key, (meta.keys || meta.seq) - 1),
                                          weight: weight})];
        };
    }

    AE.register({
        gridHover: hoverFor("head-grid"),
        heatmapHover: hoverFor("head-heatmap"),
        overviewHover: hoverFor("model-overview")
    });
})();
