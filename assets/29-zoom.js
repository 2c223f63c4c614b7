/* Long texts (issue 18): pictures pooled in blocks, exact zoom and exact hover.
 *
 * A long text's heatmap is drawn on axes counted in tokens; a box zoom writes the ranges on screen to the
 * zoom store, which the router reads (one request) to draw the EXACT part on screen (callbacks/head_heatmap.py);
 * a double click (autorange) clears it: the pooled picture again. Short texts zoom in the browser as before.
 * The head grid (a box inside one tile: that region in every tile), Compare (both panels when A and B line
 * up) and the overview (that head's heatmap, zoomed) write the same store, in tokens, naming their view.
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
        const r0 = meta.zoom ? meta.zoom.r0 : 0, c0 = meta.zoom ? meta.zoom.c0 : 0;  /* a zoomed grid's region */
        const e = {block: meta.block, how: meta.how || "max", r0: r0, c0: c0, rows: cy, cols: cx,
                   n_rows: r0 + meta.seq, n_cols: c0 + (meta.keys || meta.seq)};
        const b = meta.block, centre = (b - 1) / 2;
        return exactText(e, all.subarray(cell.tile * cx * cy, (cell.tile + 1) * cx * cy), meta.tokens,
                         meta.key_tokens || meta.tokens, c0 + cell.key * b + centre, r0 + cell.query * b + centre, name);
    };

    /* The box a person drew, in data units, from the mouse itself: on a picture whose axes keep square
       cells (scaleanchor), plotly.js widens the zoomed ranges to the plot's shape (a box in one grid tile
       would reach the next tiles), so the relayout's ranges are not the box. Recorded for the main axes of
       the graph pressed, taken once by the zoom that follows. */
    let drawn = null;
    function dataPoint(gd, ev) {
        const full = gd._fullLayout, xa = full && full.xaxis, ya = full && full.yaxis;
        if (!xa || !ya || !xa.p2l || !ya.p2l) { return null; }
        const r = gd.getBoundingClientRect();
        return [xa.p2l(ev.clientX - r.left - xa._offset), ya.p2l(ev.clientY - r.top - ya._offset)];
    }
    document.addEventListener("mousedown", function (ev) {
        const gd = ev.target && ev.target.closest ? ev.target.closest(".js-plotly-plot") : null;
        drawn = gd ? {gd: gd, start: dataPoint(gd, ev), end: null} : null;
    }, true);
    document.addEventListener("mouseup", function (ev) {
        if (drawn && !drawn.end) { drawn.end = dataPoint(drawn.gd, ev); }
    }, true);
    /* A double click on a graph (the page's own event: plotly.js may answer it with the ranges the figure
       came with, not an autorange, when those are the server's zoomed ranges): its zoom is reset. */
    let doubled = null;
    document.addEventListener("dblclick", function (ev) {
        const gd = ev.target && ev.target.closest ? ev.target.closest(".js-plotly-plot") : null;
        doubled = gd ? {gd: gd, at: Date.now()} : null;
    }, true);
    function doubleClicked(graphId) {
        const d = doubled, gd = AE.graphDiv(graphId);
        if (!(d && gd && d.gd === gd && !d.used && Date.now() - d.at < 1000)) { return false; }
        d.used = true;  /* one reset a double click */
        return true;
    }
    function drawnBox(graphId, box, relayout, xname, yname) {
        const d = drawn, gd = AE.graphDiv(graphId);
        drawn = null;
        if (!d || d.gd !== gd || !d.start || !d.end || (d.start[0] === d.end[0] && d.start[1] === d.end[1])) {
            return box;  /* a click, or a zoom from elsewhere (the mode bar): the ranges as they are */
        }
        const sorted = function (a, b) { return [Math.min(a, b), Math.max(a, b)]; };
        return {x: relayout[xname + ".range[0]"] !== undefined ? sorted(d.start[0], d.end[0]) : box.x,
                y: relayout[yname + ".range[0]"] !== undefined ? sorted(d.start[1], d.end[1]) : box.y};
    }

    /* The box a relayout names on the axes ``xname`` / ``yname`` ("xaxis", "yaxis2"), completed from the
       figure's layout when it names one axis only: {x: [a, b], y: [a, b]} (each sorted), "reset" for a
       double click (autorange; ``autorangeShown``: the graph's own layout says so, when Plotly sent
       {autosize: true} last, the only event Dash keeps), or null for anything else. */
    function boxOf(relayout, layout, xname, yname, autorangeShown) {
        if (relayout[xname + ".autorange"] || relayout[yname + ".autorange"] || autorangeShown) { return "reset"; }
        const x0 = relayout[xname + ".range[0]"], x1 = relayout[xname + ".range[1]"];
        const y0 = relayout[yname + ".range[0]"], y1 = relayout[yname + ".range[1]"];
        const x = (x0 !== undefined && x1 !== undefined) ? [x0, x1] : (layout[xname] && layout[xname].range);
        const y = (y0 !== undefined && y1 !== undefined) ? [y0, y1] : (layout[yname] && layout[yname].range);
        if ((x0 === undefined && y0 === undefined) || !x || !y) { return null; }
        const sorted = function (pair) { return [Math.min(Number(pair[0]), Number(pair[1])), Math.max(Number(pair[0]), Number(pair[1]))]; };
        return {x: sorted(x), y: sorted(y)};
    }

    /* Edges ``edges`` (cell units: -0.5 is cell 0's first edge) of a picture whose cell 0 starts at token
       ``first`` and holds ``block`` tokens a side, clamped to ``cells`` cells (and to ``end``, the token after
       the picture's last, when given), as token edges (-0.5: token 0's first edge), which boundary.Zoom reads. */
    function tokens(edges, first, block, cells, end) {
        return edges.map(function (e) {
            const t = first + (Math.min(Math.max(e, -0.5), cells - 0.5) + 0.5) * block - 0.5;
            return end === undefined ? t : Math.min(t, end - 0.5);
        });
    }

    /* The zoom store after a reset of ``view``'s zoom: cleared only when the store holds one of it. */
    function reset(current, key, view) {
        /* not null: a store set to null is not seen as a change by the gate */
        return current && current.x && (current.view || "heatmap") === view ? {key: key, view: view} : AE.NO();
    }

    /* A click that opens something in a figure a double click resets (a zoomed grid): done only when no
       second click follows (plotly.js reports the first click of a double click as a click). */
    const pending = {};
    AE.unlessDoubleClick = function (graphId, open) {
        clearTimeout(pending[graphId]);
        const since = Date.now();
        pending[graphId] = setTimeout(function () {
            /* the page's dblclick may come before the click reaches this callback (through Dash), or after */
            const d = doubled, gd = AE.graphDiv(graphId);
            if (!(d && gd && d.gd === gd && d.at >= since - 600)) { open(); }
        }, 450);
    };

    AE.register({
        /* relayoutData of the heatmap -> the zoom store (long texts only; NO for anything else). */
        zoomOf: function (relayout, stored, current) {
            const figure = AE.shownFigure("head-heatmap", stored), meta = figure && figure.layout && figure.layout.meta;
            if (!relayout || !meta || !meta.long) { return AE.NO(); }
            const gd = AE.graphDiv("head-heatmap");
            const box = boxOf(relayout, figure.layout, "xaxis", "yaxis",
                              gd && gd.layout && gd.layout.xaxis && gd.layout.xaxis.autorange === true);
            if (box === "reset" || doubleClicked("head-heatmap")) { return reset(current, meta.key, "heatmap"); }
            if (!box) { return AE.NO(); }
            const drew = drawnBox("head-heatmap", box, relayout, "xaxis", "yaxis");
            return {key: meta.key, view: "heatmap", x: drew.x, y: drew.y};
        },

        /* relayoutData of a zoomable head grid (layout.meta.zoom) -> the zoom store: the box, in the tile
           under its centre, as the tokens that tile shows there (every tile then shows that region). */
        gridZoomOf: function (relayout, stored, current) {
            const figure = AE.shownFigure("head-grid", stored);  /* the direct path draws it on the div */
            const meta = figure && figure.layout && figure.layout.meta, zoom = meta && meta.zoom;
            if (!relayout || !zoom || meta.kind !== "head-grid") { return AE.NO(); }
            const gd = AE.graphDiv("head-grid");
            let box = boxOf(relayout, figure.layout, "xaxis", "yaxis",
                            gd && gd.layout && gd.layout.xaxis && gd.layout.xaxis.autorange === true);
            if (box === "reset" || doubleClicked("head-grid")) { return reset(current, zoom.key, "grid"); }
            if (!box) { return AE.NO(); }
            box = drawnBox("head-grid", box, relayout, "xaxis", "yaxis");
            const cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells;
            const col = Math.min(meta.columns - 1, Math.max(0, Math.floor(((box.x[0] + box.x[1]) / 2 + 0.5) / meta.stride_x)));
            const row = Math.min(meta.rows - 1, Math.max(0, Math.floor(((box.y[0] + box.y[1]) / 2 + 0.5) / meta.stride_y)));
            const left = col * meta.stride_x, top = row * meta.stride_y + meta.band;
            return {key: zoom.key, view: "grid",
                    x: tokens([box.x[0] - left, box.x[1] - left], zoom.c0, meta.block, cx, zoom.c1),
                    y: tokens([box.y[0] - top, box.y[1] - top], zoom.r0, meta.block, cy, zoom.r1)};
        },

        /* relayoutData of Compare's long pictures (layout.meta.zoom) -> the zoom store: the box on the panel
           it was made on, in tokens; when A and B line up it is every panel's region, else that panel's. */
        compareZoomOf: function (relayout, figure, current) {
            const meta = figure && figure.layout && figure.layout.meta, zoom = meta && meta.zoom;
            if (!relayout || !zoom || meta.kind !== "compare") { return AE.NO(); }
            const names = Object.keys(relayout).map(function (k) { return k.match(/^([xy])axis([23]?)\.(range|autorange)/); })
                .filter(Boolean);
            if (!names.length) { return AE.NO(); }
            const suffix = names[0][2], panel = suffix === "2" ? "b" : "a";
            const box = boxOf(relayout, figure.layout, "xaxis" + suffix, "yaxis" + suffix, false);
            if (box === "reset" || doubleClicked("compare-heads")) { return reset(current, zoom.key, "compare"); }
            if (!box) { return AE.NO(); }
            const part = zoom.lined_up ? zoom.a : zoom[panel];
            const out = {key: zoom.key, view: "compare",
                         x: tokens(box.x, part.c0, part.block, part.cols, part.c1),
                         y: tokens(box.y, part.r0, part.block, part.rows, part.r1)};
            if (!zoom.lined_up) { out.panel = panel; }
            return out;
        },

        /* A box zoom inside one head's square of a long text's overview: that head's heatmap, zoomed to
           that region ([zoom store, layer, head, tab]). */
        overviewZoomOf: function (relayout, stored) {
            const figure = AE.shownFigure("model-overview", stored);  /* the direct path draws it on the div */
            const nothing = [AE.NO(), AE.NO(), AE.NO(), AE.NO()];
            const meta = figure && figure.layout && figure.layout.meta, zoom = meta && meta.zoom;
            if (!relayout || !zoom || meta.kind !== "overview") { return nothing; }
            let box = boxOf(relayout, figure.layout, "xaxis", "yaxis", false);
            if (!box || box === "reset") { return nothing; }
            box = drawnBox("model-overview", box, relayout, "xaxis", "yaxis");
            const sy = meta.stride_y || meta.stride, cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells;
            const head = Math.floor(((box.x[0] + box.x[1]) / 2 + 0.5) / meta.stride);
            const layer = Math.floor(((box.y[0] + box.y[1]) / 2 + 0.5) / sy);
            if (head < 0 || head >= meta.heads || layer < 0 || layer >= meta.layers) { return nothing; }
            const left = head * meta.stride, top = layer * sy;
            return [{key: zoom.key, view: "heatmap", x: tokens([box.x[0] - left, box.x[1] - left], 0, meta.block, cx),
                     y: tokens([box.y[0] - top, box.y[1] - top], 0, meta.block, cy)}, layer, String(head), "tab-heatmap"];
        }
    });
})();
