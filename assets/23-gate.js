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

    AE.register({
        gate: function () {
            const ctx = window.dash_clientside.callback_context;
            const changed = ctx.triggered.map(function (t) { return t.prop_id; });
            const last = ctx.states["view-request.data"];
            const grid = gridInBrowser(changed, ctx.inputs, ctx.states["head-grid.figure"]);
            if (grid) { return [AE.NO(), grid, AE.NO()]; }
            const heatmap = heatmapInBrowser(changed, ctx.inputs, ctx.states["head-heatmap.figure"]);
            if (heatmap) { return [AE.NO(), AE.NO(), heatmap]; }
            return [{changed: changed, n: ((last && last.n) || 0) + 1}, AE.NO(), AE.NO()];
        }
    });
})();
