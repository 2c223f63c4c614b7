/* Attention Explorer in the browser: what needs no request.
 *
 * - Hover tooltips of the attention images (grid, heatmap, overview): the weight is read back from the
 *   pixel's palette colour, so no weights travel beside the picture.
 * - Navigation: a click on a grid tile, an overview cell, an atlas cell or table row picks the layer,
 *   head and tab (the router then draws the view: one request).
 * - Arcs: hovering a token keeps only its arcs (Plotly.restyle, no request); a click keeps them.
 * - A click on a heatmap row follows that token; the pair box opens; Ctrl+Enter analyzes.
 */
(function () {
    "use strict";
    const NO = function () { return window.dash_clientside.no_update; };

    function graphDiv(graphId) {
        return document.querySelector("#" + graphId + " .js-plotly-plot");
    }

    function firstPoint(event) {
        return event && event.points && event.points.length ? event.points[0] : null;
    }

    /* The palette index (0 .. levels) of the image pixel at (x, y): exact colour match, else nearest. */
    function pixelLevel(graphId, figure, x, y) {
        const gd = graphDiv(graphId);
        const trace = gd && gd._fullData && gd._fullData[0];
        const canvas = trace && trace._canvas && trace._canvas.el;
        const meta = figure.layout.meta || {};
        if (!canvas || !meta.palette) { return null; }
        const rgb = canvas.getContext("2d", {willReadFrequently: true}).getImageData(x, y, 1, 1).data;
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

    /* Which tile of a grid figure the cell (x, y) is in, and where in it; null in a gap or title band. */
    function gridCell(meta, x, y) {
        const col = Math.floor(x / meta.stride_x), row = Math.floor(y / meta.stride_y);
        const dx = x - col * meta.stride_x, dy = y - row * meta.stride_y - meta.band;
        if (col < 0 || row < 0 || col >= meta.columns || dx >= meta.cells || dy < 0 || dy >= meta.cells) { return null; }
        const tile = row * meta.columns + col;
        if (tile >= meta.tiles.length) { return null; }
        return {tile: tile, id: meta.tiles[tile], key: dx, query: dy};
    }

    function overviewCell(meta, x, y) {
        if (x < 0 || y < 0) { return null; }
        const head = Math.floor(x / meta.stride), layer = Math.floor(y / meta.stride);
        if (x % meta.stride >= meta.cells || y % meta.stride >= meta.cells) { return null; }
        if (head < 0 || head >= meta.heads || layer < 0 || layer >= meta.layers) { return null; }
        return {layer: layer, head: head};
    }

    function hoverFor(graphId) {
        return function (hoverData, figure) {
            const hide = [false, NO(), ""];
            const p = firstPoint(hoverData);
            if (!p || !figure || !figure.layout || !figure.layout.meta || p.curveNumber !== 0) { return hide; }
            const meta = figure.layout.meta;
            const x = Math.round(p.x), y = Math.round(p.y);
            if (meta.kind === "overview") {
                const cell = overviewCell(meta, x, y);
                return cell ? [true, p.bbox, "layer " + cell.layer + " · head " + cell.head + " (click to open)"] : hide;
            }
            if (meta.kind === "heatmap") {
                const q = meta.queries[y], k = meta.keys[x];
                if (q === undefined || k === undefined) { return hide; }
                return [true, p.bbox, q + " → " + k + ": " + weightText(graphId, figure, x, y)];
            }
            if (meta.kind !== "head-grid") { return hide; }
            const cell = gridCell(meta, x, y);
            if (!cell) { return hide; }
            const name = meta.tile + " " + cell.id, weight = weightText(graphId, figure, x, y);
            if (meta.block === 1) {
                return [true, p.bbox, name + " · " + meta.tokens[cell.query] + " → " + meta.tokens[cell.key] + ": " + weight];
            }
            const last = meta.seq - 1, b = meta.block;
            const span = function (i) { return (i * b) + "–" + Math.min(last, i * b + b - 1); };
            return [true, p.bbox, name + " · tokens " + span(cell.query) + " → " + span(cell.key) + ": max " + weight];
        };
    }

    /* ---- arcs: keep one token's arcs while it is hovered, by restyling the drawn traces ---- */
    function decodeFloat32(spec) {
        if (!spec || spec.bdata === undefined) { return spec; }
        const bytes = Uint8Array.from(atob(spec.bdata), function (c) { return c.charCodeAt(0); });
        return new Float32Array(bytes.buffer);
    }

    function isolateArcs(hoverData, figure) {
        const gd = graphDiv("arc-view");
        if (!gd || !figure || !figure.layout || !figure.layout.meta || figure.layout.meta.kind !== "arcs") { return NO(); }
        const meta = figure.layout.meta;
        if (meta.focus !== null && meta.focus !== undefined) { return NO(); }  // a clicked token wins
        const p = firstPoint(hoverData);
        const token = p && p.curveNumber === 0 ? p.pointIndex : null;
        if (gd._aeArcsFigure !== figure) {  // a new figure: remember its full arcs
            gd._aeArcsFigure = figure;
            gd._aeArcs = figure.data.map(function (t) {
                return t.meta && t.meta.queries ? {x: decodeFloat32(t.x), y: decodeFloat32(t.y), queries: t.meta.queries} : null;
            });
            gd._aeArcsToken = undefined;  // unknown: the next call restyles whatever it is
        }
        if (token === gd._aeArcsToken) { return NO(); }
        gd._aeArcsToken = token;
        const xs = [], ys = [], traces = [];
        gd._aeArcs.forEach(function (arcs, index) {
            if (!arcs) { return; }
            traces.push(index);
            if (token === null) { xs.push(arcs.x); ys.push(arcs.y); return; }
            const n = meta.points, keep = [];
            arcs.queries.forEach(function (q, i) { if (q === token) { keep.push(i); } });
            const x = new Float32Array(keep.length * n), y = new Float32Array(keep.length * n);
            keep.forEach(function (i, j) {
                x.set(arcs.x.subarray(i * n, (i + 1) * n), j * n);
                y.set(arcs.y.subarray(i * n, (i + 1) * n), j * n);
            });
            xs.push(x); ys.push(y);
        });
        if (traces.length) { window.Plotly.restyle(gd, {x: xs, y: ys}, traces); }
        return NO();
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        attention: {
            gridHover: hoverFor("head-grid"),
            heatmapHover: hoverFor("head-heatmap"),
            overviewHover: hoverFor("model-overview"),
            isolateArcs: isolateArcs,

            /* A click on a grid tile, an overview cell or an atlas cell: [layer, head, tab]. In Rollout
               mode the grid's tiles are layers. */
            navigate: function (gridClick, overviewClick, atlasClick, gridFigure, overviewFigure, mode) {
                const nothing = [NO(), NO(), NO()];
                const ctx = window.dash_clientside.callback_context;
                const trigger = ctx.triggered.length ? ctx.triggered[0].prop_id.split(".")[0] : "";
                if (trigger === "head-grid") {
                    const p = firstPoint(gridClick), meta = gridFigure && gridFigure.layout && gridFigure.layout.meta;
                    if (!p || !meta || meta.kind !== "head-grid") { return nothing; }
                    const cell = gridCell(meta, Math.round(p.x), Math.round(p.y));
                    if (!cell) { return nothing; }
                    return meta.tile === "layer" || mode === "rollout"
                        ? [cell.id, NO(), "tab-heatmap"] : [NO(), String(cell.id), "tab-heatmap"];
                }
                if (trigger === "model-overview") {
                    const p = firstPoint(overviewClick), meta = overviewFigure && overviewFigure.layout && overviewFigure.layout.meta;
                    if (!p || !meta || meta.kind !== "overview") { return nothing; }
                    const cell = overviewCell(meta, Math.round(p.x), Math.round(p.y));
                    return cell ? [cell.layer, String(cell.head), "tab-heatmap"] : nothing;
                }
                if (trigger === "atlas-map") {
                    const p = firstPoint(atlasClick);
                    return p ? [Math.round(p.y), String(Math.round(p.x)), "tab-heatmap"] : nothing;
                }
                return nothing;
            },

            /* A click in a row of the atlas's table: rows carry ids "layer-head", so sorting the table
               does not change which head a row opens. */
            openTableRow: function (tableCell) {
                const id = tableCell && tableCell.row_id ? String(tableCell.row_id).split("-") : null;
                return id && id.length === 2 ? [Number(id[0]), id[1], "tab-heatmap"] : [NO(), NO(), NO()];
            },

            /* A click on a token in the arc view keeps its arcs (again: releases them) and follows it in
               Token focus: [arc focus, followed token], raw token indices. */
            arcClick: function (clickData, figure, current) {
                const p = firstPoint(clickData);
                const meta = figure && figure.layout && figure.layout.meta;
                if (!p || p.curveNumber !== 0 || !meta || !meta.token_index) { return [NO(), NO()]; }
                const token = meta.token_index[p.pointIndex];
                if (token === undefined) { return [NO(), NO()]; }
                return token === current ? [null, NO()] : [token, token];
            },

            /* A click on a heatmap cell follows its query token (the row) in Token focus. */
            heatmapClick: function (clickData, figure) {
                const p = firstPoint(clickData);
                const meta = figure && figure.layout && figure.layout.meta;
                if (!p || p.curveNumber !== 0 || !meta || !meta.token_index) { return NO(); }
                const token = meta.token_index[Math.round(p.y)];
                return token === undefined ? NO() : token;
            },

            /* The token picker's value, when a person changed it: the router also sets the picker to
               the token it follows, which is then already the stored one (no second request). */
            pickToken: function (value, current) {
                return value === null || value === undefined || value === current ? NO() : value;
            },

            togglePair: function (clicks, isOpen) { return clicks ? !isOpen : isOpen; }
        }
    });

    document.addEventListener("keydown", function (event) {
        if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) { return; }
        const target = event.target;
        if (!target || (target.id !== "text-input" && target.id !== "text-pair-input")) { return; }
        const button = document.getElementById("analyze-button");
        if (button) {
            event.preventDefault();
            button.click();
        }
    });
})();
