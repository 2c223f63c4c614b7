/* Long texts (issue 18): pictures pooled in blocks, exact zoom and exact hover.
 *
 * A long text's heatmap is drawn on axes counted in tokens; a box zoom writes the ranges on screen to the
 * zoom store, which the router reads (one request) to draw the EXACT part on screen (callbacks/head_heatmap.py);
 * a double click (autorange) clears it: the pooled picture again. Short texts zoom in the browser as before.
 * The hover reads each cell's exact value from the figure (layout.meta.exact.values, float32), never the
 * palette's colour: the exact weight and its two tokens, or a block's exact max (or mean) and its tokens. */
(function () {
    "use strict";
    const AE = window.AE;
    const decoded = new WeakMap();

    /* A base64 typed-array spec ({dtype: "f4", bdata}) as a Float32Array, decoded once per figure. */
    AE.floats = function (spec) {
        if (!spec || spec.dtype !== "f4" || typeof spec.bdata !== "string") { return null; }
        let out = decoded.get(spec);
        if (!out) {
            const bytes = atob(spec.bdata), buffer = new ArrayBuffer(bytes.length), view = new Uint8Array(buffer);
            for (let i = 0; i < bytes.length; i++) { view[i] = bytes.charCodeAt(i); }
            out = new Float32Array(buffer);
            decoded.set(spec, out);
        }
        return out;
    };

    /* An exact value as the hover shows it: 4 significant digits (small weights in exponent form). */
    AE.exactText = function (v) {
        if (v < 0) { return null; }
        if (v === 0) { return "0"; }
        return v >= 0.001 ? v.toFixed(4) : v.toExponential(3);
    };

    function span(first, block, count, labels) {
        const last = Math.min(count - 1, first + block - 1);
        if (block === 1 || last === first) { return "#" + first + " " + labels[first]; }
        return "#" + first + "–" + last + " (" + labels[first] + " … " + labels[last] + ")";
    }

    /* The tooltip at data point (x, y) of a picture described by ``e`` (meta.exact: where it starts, its
       block, its rows and columns) whose cells are ``values``; queries and keys name the units. */
    function exactText(e, values, queries, keys, x, y, tileName) {
        const words = AE.words();
        const row = Math.floor((y + 0.5 - e.r0) / e.block), col = Math.floor((x + 0.5 - e.c0) / e.block);
        if (!values || row < 0 || col < 0 || row >= e.rows || col >= e.cols) { return null; }
        const value = AE.exactText(values[row * e.cols + col]);
        const q0 = e.r0 + row * e.block, k0 = e.c0 + col * e.block;
        if (value === null) { return words.left_out || "left out by the pair filter"; }
        if (e.block === 1) {
            return (tileName ? tileName + " · " : "") + queries[q0] + " → " + keys[k0] + ": " + value;
        }
        const template = tileName ? (e.how === "mean" ? words.tile_block_mean : words.tile_block_max)
            : (e.how === "mean" ? words.block_mean : words.block_max);
        return AE.fmt(template || "tokens {query} → {key}: max {weight}", {
            tile: tileName, query: span(q0, e.block, e.n_rows, queries),
            key: span(k0, e.block, e.n_cols, keys), weight: value});
    }

    /* A long heatmap's tooltip (meta.exact). */
    AE.exactHover = function (meta, x, y) {
        return exactText(meta.exact, AE.floats(meta.exact.values), meta.queries, meta.keys, x, y, null);
    };

    /* A long text's grid tooltip: meta.values holds every tile's pooled cells (tile, row, column), exact. */
    AE.exactGridHover = function (meta, cell, name) {
        const all = AE.floats(meta.values);
        if (!all) { return null; }
        const cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells;
        const e = {block: meta.block, how: meta.how || "max", r0: 0, c0: 0, rows: cy, cols: cx,
                   n_rows: meta.seq, n_cols: meta.keys || meta.seq};
        const b = meta.block, centre = (b - 1) / 2;
        return exactText(e, all.subarray(cell.tile * cx * cy, (cell.tile + 1) * cx * cy), meta.tokens,
                         meta.key_tokens || meta.tokens, cell.key * b + centre, cell.query * b + centre, name);
    };

    AE.register({
        /* relayoutData of the heatmap -> the zoom store (long texts only; NO for anything else). */
        zoomOf: function (relayout, stored, current) {
            const figure = AE.shownFigure("head-heatmap", stored), meta = figure && figure.layout && figure.layout.meta;
            if (!relayout || !meta || !meta.long) { return AE.NO(); }
            /* a double click: Plotly autoranges, then often sends {autosize: true} last (the only event Dash keeps):
               the graph's own layout says which */
            const gd = AE.graphDiv("head-heatmap");
            const autorange = relayout["xaxis.autorange"] || relayout["yaxis.autorange"] ||
                (gd && gd.layout && gd.layout.xaxis && gd.layout.xaxis.autorange === true);
            /* not null: a store set to null is not seen as a change by the gate */
            if (autorange) { return current && current.x ? {key: meta.key} : AE.NO(); }
            const x0 = relayout["xaxis.range[0]"], x1 = relayout["xaxis.range[1]"];
            const y0 = relayout["yaxis.range[0]"], y1 = relayout["yaxis.range[1]"];
            const layout = figure.layout;
            const x = (x0 !== undefined && x1 !== undefined) ? [x0, x1] : (layout.xaxis && layout.xaxis.range);
            const y = (y0 !== undefined && y1 !== undefined) ? [y0, y1] : (layout.yaxis && layout.yaxis.range);
            if ((x0 === undefined && y0 === undefined) || !x || !y) { return AE.NO(); }
            return {key: meta.key, x: [Number(x[0]), Number(x[1])], y: [Number(y[0]), Number(y[1])]};
        }
    });
})();
