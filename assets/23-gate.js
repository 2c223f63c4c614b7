/* The gate: every control a view depends on passes here. What the browser can draw alone it draws (a
 * grid layer or head change, another head of the heatmap's layer); anything else becomes ONE view
 * request for the router (callbacks/router.py), naming what changed: one request per interaction. */
(function () {
    "use strict";
    const AE = window.AE;

    /* The grid's tile titles and the outline of the selected tile (as components/figures.py's
       grid_selection makes them). */
    function gridSelection(meta, selected) {
        const texts = [], colors = [], shapes = [];
        meta.tiles.forEach(function (id, i) {
            const r = Math.floor(i / meta.columns), c = i % meta.columns, on = selected !== null && id === selected;
            const name = meta.tile_names[i];
            texts.push(name);
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

    /* The figure a graph shows now, as plotly.js holds it (the browser may have changed it since Dash's
       figure prop was set: see draw). Null before the first draw. */
    function shown(graphId) {
        const gd = AE.graphDiv(graphId);
        return gd && gd.layout && gd.layout.meta && gd.data ? gd : null;
    }

    /* ONE browser-side step: the change is drawn on the graph div by plotly.js itself (Plotly.update:
       only the traces' attributes and layout keys named), not handed back to Dash as a new figure,
       which costs a renderer hop and a whole-figure Plotly.react. Dash's figure prop keeps the
       server's last figure; what reads the figure shown reads it from the div (assets/21-hover.js). */
    function draw(gd, traces, layout) {
        const indices = Object.keys(traces).map(Number), update = {};
        indices.forEach(function (i, at) {
            Object.keys(traces[i]).forEach(function (name) {
                if (!update[name]) { update[name] = indices.map(function () { return undefined; }); }
                update[name][at] = traces[i][name];
            });
        });
        window.Plotly.update(gd, update, layout, indices);
    }

    /* The head grid redrawn in the browser, when it can be: the grid is open in Raw mode with no switch,
       it carries every layer's picture for the analysis shown, and only the layer and/or head changed.
       Returns true when it drew, false when the server must. */
    function gridInBrowser(changed, v) {
        const gd = shown("head-grid"), meta = gd && gd.layout.meta;
        const handle = v["analysis-handle.data"];
        const switches = v["view-switches.value"] || [];
        if (!meta || meta.kind !== "head-grid" || !meta.sources || v["view-tabs.active_tab"] !== "tab-grid" ||
            v["attention-mode.value"] !== "raw" || switches.length || !handle || handle.key !== meta.key ||
            !sameKind(meta, v)) {
            return false;
        }
        const allowed = ["layer-slider.value", "head-select.value"];
        if (!changed.length || changed.some(function (c) { return allowed.indexOf(c) < 0; })) { return false; }
        const layer = v["layer-slider.value"];
        if (!Number.isInteger(layer) || layer < 0 || layer >= meta.sources.length) { return false; }
        const head = String(v["head-select.value"]);
        const selected = /^[0-9]+$/.test(head) && Number(head) < meta.tiles.length ? Number(head) : null;
        const selection = gridSelection(meta, selected);
        /* only what changed, each at its cheapest: the titles' colours (a restyle of style alone), the
           outline (shapes: drawn alone), the title; the picture only for another layer (a redraw) */
        const traces = {1: {"textfont.color": selection.colors}};
        if (meta.layer !== layer) { traces[0] = {source: meta.sources[layer]}; }
        meta.layer = layer;  /* the page's own bookkeeping: a relayout of meta would redraw the whole plot */
        draw(gd, traces, {shapes: selection.shapes, "title.text": meta.titles[layer] + titleNote(gd.layout)});
        return true;
    }

    /* Whether a figure was drawn for the kind of attention chosen now (encoder / decoder / cross; only
       encoder-decoder figures name one: a model with one kind ignores the selector). */
    function sameKind(meta, v) {
        const chosen = v["attention-kind.value"];
        return !meta.attention_kind || chosen === meta.attention_kind;
    }

    /* The title's grey note (" <span ...>...</span>"), kept when the browser changes the title. */
    function titleNote(layout) {
        const text = (layout.title && layout.title.text) || "";
        const at = text.indexOf(" <span");
        return at >= 0 ? text.slice(at) : "";
    }

    /* Another head, or another layer, in the heatmap, when it shows one tile of a layer's grid picture:
       move the picture so that head's tile covers the axes (another layer: the grid's picture of that
       layer, which the head grid holds for every layer). False when the server must draw. */
    function heatmapInBrowser(changed, v) {
        const gd = shown("head-heatmap"), meta = gd && gd.layout.meta;
        const handle = v["analysis-handle.data"];
        const allowed = ["layer-slider.value", "head-select.value"];
        if (!meta || meta.kind !== "heatmap" || !meta.grid || v["view-tabs.active_tab"] !== "tab-heatmap" ||
            v["attention-mode.value"] !== "raw" || (v["view-switches.value"] || []).length ||
            !handle || handle.key !== meta.key || !sameKind(meta, v) || !changed.length ||
            changed.some(function (c) { return allowed.indexOf(c) < 0; })) {
            return false;
        }
        const head = String(v["head-select.value"]), layer = v["layer-slider.value"];
        if (!/^[0-9]+$/.test(head) || Number(head) >= meta.grid.tiles.length || !Number.isInteger(layer)) { return false; }
        const g = meta.grid, h = Number(head), row = Math.floor(h / g.columns), column = h % g.columns;
        const trace = {x0: -column * g.stride_x, y0: -(row * g.stride_y + g.band)};
        const current = meta.layer === undefined ? layer : meta.layer;
        if (layer !== current) {  // the layer's picture from the grid, when it holds that analysis's layers
            const grid = shown("head-grid"), gm = grid && grid.layout.meta;
            if (!gm || !gm.sources || gm.key !== meta.key || gm.attention_kind !== meta.attention_kind ||
                gm.stride_x !== g.stride_x || gm.stride_y !== g.stride_y || !meta.title_template ||
                layer < 0 || layer >= gm.sources.length) {
                return false;
            }
            trace.source = gm.sources[layer];
        }
        const title = meta.title_template ? AE.fmt(meta.title_template, {layer: layer, head: h}) : meta.titles[h];
        meta.head = h;
        meta.layer = layer;
        draw(gd, {0: trace}, {"title.text": title + titleNote(gd.layout)});
        return true;
    }

    AE.register({
        gate: function () {
            const ctx = window.dash_clientside.callback_context;
            const changed = ctx.triggered.map(function (t) { return t.prop_id; });
            const last = ctx.states["view-request.data"];
            if (gridInBrowser(changed, ctx.inputs) || heatmapInBrowser(changed, ctx.inputs)) { return AE.NO(); }
            return {changed: changed, n: ((last && last.n) || 0) + 1};
        }
    });
})();
