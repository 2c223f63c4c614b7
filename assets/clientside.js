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

    /* The words this code shows, in the page's language (components/layout.py browser_words). */
    let wordsCache = null;
    function words() {
        if (wordsCache === null) {
            const el = document.getElementById("ae-i18n");
            try { wordsCache = el ? JSON.parse(el.getAttribute("data-strings") || "{}") : {}; } catch (e) { wordsCache = {}; }
        }
        return wordsCache;
    }
    function fmt(template, values) {
        return String(template).replace(/\{(\w+)\}/g, function (all, name) {
            return values[name] === undefined ? all : String(values[name]);
        });
    }

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

    /* Which tile of a grid figure the cell (x, y) is in, and where in it; null in a gap or title band. */
    function gridCell(meta, x, y) {
        const col = Math.floor(x / meta.stride_x), row = Math.floor(y / meta.stride_y);
        const dx = x - col * meta.stride_x, dy = y - row * meta.stride_y - meta.band;
        const cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells;
        if (col < 0 || row < 0 || col >= meta.columns || dx >= cx || dy < 0 || dy >= cy) { return null; }
        const tile = row * meta.columns + col;
        if (tile >= meta.tiles.length) { return null; }
        return {tile: tile, id: meta.tiles[tile], key: dx, query: dy};
    }

    function overviewCell(meta, x, y) {
        if (x < 0 || y < 0) { return null; }
        const sy = meta.stride_y || meta.stride;
        const head = Math.floor(x / meta.stride), layer = Math.floor(y / sy);
        if (x % meta.stride >= (meta.cells_x || meta.cells) || y % sy >= (meta.cells_y || meta.cells)) { return null; }
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
                return cell ? [true, p.bbox, fmt(words().overview_cell || "layer {layer} · head {head}",
                                                 {layer: cell.layer, head: cell.head})] : hide;
            }
            if (meta.kind === "heatmap") {
                const q = meta.queries[y], k = meta.keys[x];
                if (q === undefined || k === undefined) { return hide; }
                const share = weightText(graphId, figure, x, y);
                if (meta.row_scale && share !== "?") {  // weighted by value norm: the unscaled product too
                    const product = (Number(share) * meta.row_scale[y]).toFixed(3);
                    return [true, p.bbox, q + " → " + k + ": " + fmt(words().value_share || "{share} (α·‖f(x)‖ = {product})",
                                                                      {share: share, product: product})];
                }
                return [true, p.bbox, q + " → " + k + ": " + share];
            }
            if (meta.kind !== "head-grid") { return hide; }
            const cell = gridCell(meta, x, y);
            if (!cell) { return hide; }
            const name = (meta.tile_names && meta.tile_names[cell.tile]) || (meta.tile + " " + cell.id), weight = weightText(graphId, figure, x, y);
            if (meta.block === 1) {
                const keys = meta.key_tokens || meta.tokens;
                return [true, p.bbox, name + " · " + meta.tokens[cell.query] + " → " + keys[cell.key] + ": " + weight];
            }
            const b = meta.block;
            const span = function (i, last) { return (i * b) + "–" + Math.min(last, i * b + b - 1); };
            return [true, p.bbox, fmt(words().pooled_cell || "{tile} · tokens {query} → {key}: max {weight}",
                                      {tile: name, query: span(cell.query, meta.seq - 1), key: span(cell.key, (meta.keys || meta.seq) - 1),
                                       weight: weight})];
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

    /* ---- the gate: every control a view depends on passes here ---- */

    /* The grid's tile titles and the outline of the selected tile (as components/figures.py's
       grid_selection makes them). */
    function gridSelection(meta, selected) {
        const texts = [], colors = [], shapes = [];
        meta.tiles.forEach(function (id, i) {
            const r = Math.floor(i / meta.columns), c = i % meta.columns, on = selected !== null && id === selected;
            const name = meta.tile_names[i];
            texts.push(on ? "<b>" + name + "</b>" : name);
            colors.push(on ? meta.highlight : "#333");
            if (on) {
                const top = r * meta.stride_y + meta.band;
                const cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells;
                shapes.push({type: "rect", xref: "x", yref: "y", x0: c * meta.stride_x - 0.5,
                             x1: c * meta.stride_x + cx - 0.5, y0: top - 0.5, y1: top + cy - 0.5,
                             line: {color: meta.highlight, width: 3}});
            }
        });
        return {text: texts, colors: colors, shapes: shapes};
    }

    /* The head grid redrawn in the browser, when it can be: the grid is open in Raw mode with no switch,
       it carries every layer's picture for the analysis shown, and only the layer and/or head changed.
       Returns the new figure, or null when the server must draw. */
    function gridInBrowser(changed, v, figure) {
        const meta = figure && figure.layout && figure.layout.meta;
        const handle = v["analysis-handle.data"];
        const switches = v["view-switches.value"] || [];
        if (!meta || meta.kind !== "head-grid" || !meta.sources || v["view-tabs.active_tab"] !== "tab-grid" ||
            v["attention-mode.value"] !== "raw" || switches.length || !handle || handle.key !== meta.key ||
            !sameKind(meta, v)) {
            return null;
        }
        const allowed = ["layer-slider.value", "head-select.value"];
        if (!changed.length || changed.some(function (c) { return allowed.indexOf(c) < 0; })) { return null; }
        const layer = v["layer-slider.value"];
        if (!Number.isInteger(layer) || layer < 0 || layer >= meta.sources.length) { return null; }
        const head = String(v["head-select.value"]);
        const selected = /^[0-9]+$/.test(head) && Number(head) < meta.tiles.length ? Number(head) : null;
        const selection = gridSelection(meta, selected);
        const data = figure.data.slice();
        data[0] = Object.assign({}, data[0], {source: meta.sources[layer]});
        data[1] = Object.assign({}, data[1], {text: selection.text,
                                              textfont: Object.assign({}, data[1].textfont, {color: selection.colors})});
        const layout = Object.assign({}, figure.layout, {
            shapes: selection.shapes, meta: Object.assign({}, meta, {layer: layer}),
            title: Object.assign({}, figure.layout.title, {text: meta.titles[layer] + titleNote(figure)})});
        return {data: data, layout: layout};
    }

    /* Whether a figure was drawn for the kind of attention chosen now (encoder / decoder / cross; only
       encoder-decoder figures name one: a model with one kind ignores the selector). */
    function sameKind(meta, v) {
        const chosen = v["attention-kind.value"];
        return !meta.attention_kind || chosen === meta.attention_kind;
    }

    /* The title's grey note (" <span ...>...</span>"), kept when the browser changes the title. */
    function titleNote(figure) {
        const text = (figure.layout.title && figure.layout.title.text) || "";
        const at = text.indexOf(" <span");
        return at >= 0 ? text.slice(at) : "";
    }

    /* Another head of the layer in the heatmap, when it shows one tile of the layer's grid picture:
       move the picture so that head's tile covers the axes. Null when the server must draw. */
    function heatmapInBrowser(changed, v, figure) {
        const meta = figure && figure.layout && figure.layout.meta;
        const handle = v["analysis-handle.data"];
        if (!meta || meta.kind !== "heatmap" || !meta.grid || v["view-tabs.active_tab"] !== "tab-heatmap" ||
            v["attention-mode.value"] !== "raw" || (v["view-switches.value"] || []).length ||
            !handle || handle.key !== meta.key || !sameKind(meta, v) || changed.length !== 1 ||
            changed[0] !== "head-select.value") {
            return null;
        }
        const head = String(v["head-select.value"]);
        if (!/^[0-9]+$/.test(head) || Number(head) >= meta.grid.tiles.length) { return null; }
        const g = meta.grid, h = Number(head), row = Math.floor(h / g.columns), column = h % g.columns;
        const data = figure.data.slice();
        data[0] = Object.assign({}, data[0], {x0: -column * g.stride_x, y0: -(row * g.stride_y + g.band)});
        const layout = Object.assign({}, figure.layout, {
            meta: Object.assign({}, meta, {head: h}),
            title: Object.assign({}, figure.layout.title, {text: meta.titles[h] + titleNote(figure)})});
        return {data: data, layout: layout};
    }

    window.dash_clientside = Object.assign({}, window.dash_clientside, {
        attention: {
            /* Every control of the views is an input here. What the browser can draw alone it draws
               (a grid layer or head change); anything else becomes ONE view request for the router,
               naming what changed: one request per interaction, whatever changed at once. */
            gate: function () {
                const ctx = window.dash_clientside.callback_context;
                const changed = ctx.triggered.map(function (t) { return t.prop_id; });
                const last = ctx.states["view-request.data"];
                const grid = gridInBrowser(changed, ctx.inputs, ctx.states["head-grid.figure"]);
                if (grid) { return [NO(), grid, NO()]; }
                const heatmap = heatmapInBrowser(changed, ctx.inputs, ctx.states["head-heatmap.figure"]);
                if (heatmap) { return [NO(), NO(), heatmap]; }
                return [{changed: changed, n: ((last && last.n) || 0) + 1}, NO(), NO()];
            },

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

            /* A click on a heatmap cell: look inside the head for its query token (the row). */
            heatmapClick: function (clickData, figure) {
                const p = firstPoint(clickData);
                const meta = figure && figure.layout && figure.layout.meta;
                if (!p || p.curveNumber !== 0 || !meta || !meta.token_index) { return [NO(), NO()]; }
                const token = meta.token_index[Math.round(p.y)];
                return token === undefined ? [NO(), NO()] : [token, "tab-inside"];
            },

            /* The token picker's value, when a person changed it: the router also sets the picker to
               the token it follows, which is then already the stored one (no second request). */
            pickToken: function (value, current) {
                return value === null || value === undefined || value === current ? NO() : value;
            },

            openCompareRow: function (tableCell) {
                const id = tableCell && tableCell.row_id ? String(tableCell.row_id).split("-") : null;
                return id && id.length === 2 ? [Number(id[0]), id[1]] : [NO(), NO()];
            },

            togglePair: function (clicks, isOpen) { return clicks ? !isOpen : isOpen; },

            /* Export: the open view's picture as PNG or SVG, drawn by plotly.js, named after what it shows
               (as components/export.py's file_stem names it: model_layer3_head5_heatmap). */
            exportImage: function (png, svg, tab, handle, layer, head, mode, kind, kindStyle, pairFilter, pairStyle,
                                   step) {
                const ctx = window.dash_clientside.callback_context;
                const fmt = ctx.triggered.length && ctx.triggered[0].prop_id.indexOf("export-svg") === 0 ? "svg" : "png";
                const graphs = {"tab-grid": ["head-grid", "grid"], "tab-heatmap": ["head-heatmap", "heatmap"],
                                "tab-arcs": ["arc-view", "arcs"], "tab-overview": ["model-overview", "overview"],
                                "tab-atlas": ["atlas-map", "atlas"], "tab-focus": ["focus-heatmap", "focus"],
                                "tab-inside": ["inside-weights", "inside"], "tab-generation": ["generation-heads", "generation"],
                                "tab-compare": ["compare-heads", "compare"]};
                const which = graphs[tab] || graphs["tab-grid"];
                const gd = document.querySelector("#" + which[0] + " .js-plotly-plot");
                if (!gd || !gd.data || !gd.data.length) { return [NO(), words().nothing_to_export || "Nothing to export yet."]; }
                /* components/export.py safe_part, model_slug and file_stem, step by step */
                const safe = function (s) {
                    return String(s).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/_+/g, "_").replace(/^[._-]+|[._-]+$/g, "");
                };
                let model = String((handle && handle.model) || "model").trim().replace(/[\\/]+$/, "");
                if (/^[\/~.]/.test(model) || model.indexOf("\\") >= 0 || /^[A-Za-z]:/.test(model)) {
                    model = model.split(/[\\/]/).pop();
                }
                const parts = [safe(safe(model).slice(0, 80)) || "model"];
                if (which[1] !== "overview" && which[1] !== "atlas" && which[1] !== "focus") {
                    parts.push("layer" + layer);
                    const h = String(head), one = /^[0-9]+$/.test(h);
                    parts.push(mode === "rollout" ? "rollout" : one ? "head" + h
                        : which[1] === "inside" ? "head0" : h === "all" ? "allheads" : "mean");
                }
                parts.push(which[1]);
                if (kind && !(kindStyle && kindStyle.display === "none")) { parts.push(kind); }
                if (pairFilter && pairFilter !== "all" && !(pairStyle && pairStyle.display === "none")) {
                    parts.push(safe(String(pairFilter).replace("→", "to")));
                }
                if (which[1] === "generation") { parts.push("step" + step); }
                window.Plotly.downloadImage(gd, {format: fmt, filename: parts.join("_"), scale: fmt === "png" ? 2 : 1});
                return [{format: fmt, filename: parts.join("_") + "." + fmt, n: Date.now()}, ""];
            },

            /* The page's state in its URL (names: callbacks/urlstate.py). A new analysis gets a new
               history entry, so Back returns to the previous text; any other change replaces it. */
            writeUrl: function (share, layer, head, tab, mode, switches, token, kind, pairFilter, step,
                                compareShare, kindStyle, pairStyle) {
                const views = {"tab-grid": "grid", "tab-heatmap": "heatmap", "tab-arcs": "arcs",
                               "tab-overview": "overview", "tab-atlas": "atlas", "tab-focus": "focus",
                               "tab-inside": "inside", "tab-generation": "generation",
                               "tab-compare": "compare"};
                const shown = function (style) { return !(style && style.display === "none"); };
                const params = new URLSearchParams();
                if (share) {
                    if (share.id) { params.set("id", share.id); }
                    else {
                        if (share.text) { params.set("text", share.text); }
                        if (share.pair) { params.set("pair", share.pair); }
                    }
                    if (share.model) { params.set("model", share.model); }
                    if (share.target) { params.set("target", share.target); }
                    if (share["continue"]) { params.set("continue", String(share["continue"])); }
                }
                params.set("layer", String(layer));
                params.set("head", String(head));
                params.set("view", views[tab] || "grid");
                params.set("mode", mode || "raw");
                params.set("hide_special", (switches || []).indexOf("hide") >= 0 ? "1" : "0");
                params.set("merge", (switches || []).indexOf("merge") >= 0 ? "1" : "0");
                if (token !== null && token !== undefined) { params.set("token", String(token)); }
                if (kind && shown(kindStyle)) { params.set("kind", kind); }
                if (pairFilter && pairFilter !== "all" && shown(pairStyle)) {
                    params.set("filter", pairFilter.replace("→", ""));
                }
                if (tab === "tab-generation" && step) { params.set("step", String(step)); }
                if (tab === "tab-compare" && compareShare && compareShare.text) {
                    params.set("compare", compareShare.text);
                    if (share && compareShare.model !== share.model) { params.set("compare_model", compareShare.model); }
                }
                const lang = new URLSearchParams(window.location.search).get("lang");
                if (lang) { params.set("lang", lang); }
                const url = window.location.pathname + "?" + params.toString();
                if (url === window.location.pathname + window.location.search) { return NO(); }
                const ctx = window.dash_clientside.callback_context;
                const analysed = ctx.triggered.some(function (t) { return t.prop_id === "share-state.data"; });
                if (analysed && share && !share.from_url) { window.history.pushState(null, "", url); }
                else { window.history.replaceState(null, "", url); }
                return NO();
            },

            copyLink: function () { return window.location.href; },

            /* The language switch: the same address (so the same analysis and view) in another language. */
            switchLanguage: function () {
                const ctx = window.dash_clientside.callback_context;
                const pressed = ctx.triggered.length && ctx.triggered[0].value ? ctx.triggered[0].prop_id : "";
                const match = pressed.match(/"lang":"(\w+)"/);
                if (!match) { return NO(); }
                const params = new URLSearchParams(window.location.search);
                params.set("lang", match[1]);
                window.location.assign(window.location.pathname + "?" + params.toString());
                return NO();
            },

            /* At page load: the query string, when there is one, for Analyze to open (callbacks/analyze.py). */
            readUrl: function () {
                return window.location.search.length > 1 ? {search: window.location.search, n: 0} : NO();
            }
        }
    });

    /* The page's language on its root element, so the browser picks fonts for it (CJK). */
    const setLanguage = function () {
        const el = document.getElementById("ae-i18n");
        if (el && el.getAttribute("data-lang")) {
            document.documentElement.lang = el.getAttribute("data-lang");
            if (words().page_title) { document.title = words().page_title; }  /* the browser tab's title too */
            return;
        }
        window.setTimeout(setLanguage, 100);
    };
    setLanguage();

    /* Back and Forward: the page shows the state of the address it moved to. */
    window.addEventListener("popstate", function () {
        if (window.dash_clientside.set_props) {
            window.dash_clientside.set_props("url-state", {data: {search: window.location.search, n: Date.now()}});
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
