/* Clicks that pick what to show (the router then draws it: one request): a grid tile, an overview cell,
 * an atlas cell or table row opens that head; a heatmap row looks inside the head for that token. */
(function () {
    "use strict";
    const AE = window.AE;
    const NO = AE.NO;

    AE.register({
        /* A click on a grid tile, an overview cell or an atlas cell: [layer, head, tab]. In Rollout
           mode the grid's tiles are layers. */
        navigate: function (gridClick, overviewClick, atlasClick, gridStored, overviewStored, mode) {
            const gridFigure = AE.shownFigure("head-grid", gridStored);
            const overviewFigure = AE.shownFigure("model-overview", overviewStored);
            const nothing = [NO(), NO(), NO()];
            const ctx = window.dash_clientside.callback_context;
            const trigger = ctx.triggered.length ? ctx.triggered[0].prop_id.split(".")[0] : "";
            if (trigger === "head-grid") {
                const p = AE.firstPoint(gridClick), meta = gridFigure && gridFigure.layout && gridFigure.layout.meta;
                if (!p || !meta || meta.kind !== "head-grid") { return nothing; }
                const cell = AE.gridCell(meta, Math.round(p.x), Math.round(p.y));
                if (!cell) { return nothing; }
                if (meta.zoom && window.dash_clientside.set_props) {
                    /* a zoomable grid (29-zoom.js): a double click resets its zoom, so a click opens the head
                       only when no second click follows */
                    AE.unlessDoubleClick("head-grid", function () {
                        window.dash_clientside.set_props("head-select", {value: String(cell.id)});
                        window.dash_clientside.set_props("view-tabs", {active_tab: "tab-heatmap"});
                    });
                    return nothing;
                }
                return meta.tile === "layer" || mode === "rollout"
                    ? [cell.id, NO(), "tab-heatmap"] : [NO(), String(cell.id), "tab-heatmap"];
            }
            if (trigger === "model-overview") {
                const p = AE.firstPoint(overviewClick), meta = overviewFigure && overviewFigure.layout && overviewFigure.layout.meta;
                if (!p || !meta || meta.kind !== "overview") { return nothing; }
                const cell = AE.overviewCell(meta, Math.round(p.x), Math.round(p.y));
                return cell ? [cell.layer, String(cell.head), "tab-heatmap"] : nothing;
            }
            if (trigger === "atlas-map") {
                const p = AE.firstPoint(atlasClick);
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

        /* A click on a heatmap cell: look inside the head for its query token (the row). */
        heatmapClick: function (clickData, stored) {
            const p = AE.firstPoint(clickData), figure = AE.shownFigure("head-heatmap", stored);
            const meta = figure && figure.layout && figure.layout.meta;
            if (!p || p.curveNumber !== 0 || !meta || !meta.token_index) { return [NO(), NO()]; }
            /* a long text's heatmap is zoomed by a box and reset by a double click, whose first click
               would leave the tab: there the picker of Inside a head picks the query (29-zoom.js) */
            if (meta.long) { return [NO(), NO()]; }
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

        /* Another kind of attention (an encoder-decoder model's encoder, decoder or cross-attention, whose
           depths and head counts may differ): the layer slider and the head selector follow it, keeping the
           layer and head when that kind has them. ``dims`` by kind: {layers, heads, head_options}
           (callbacks/analyze.py kind_dims). Nothing changes what is already right, so the router draws
           once, after this. */
        fitToKind: function (kind, dims, layer, layerMax, head, headOptions) {
            const d = dims && dims[kind];
            if (!d) { return [NO(), NO(), NO(), NO(), NO()]; }
            const max = d.layers - 1, marks = {};
            for (let i = 0; i < d.layers; i++) { marks[i] = String(i); }
            const value = String(head);
            const headKept = value === "all" || value === "mean" || (/^[0-9]+$/.test(value) && Number(value) < d.heads);
            const sameHeads = Array.isArray(headOptions) && headOptions.length === d.head_options.length;
            return [max === layerMax ? NO() : max, max === layerMax ? NO() : marks,
                    Number.isInteger(layer) && layer > max ? max : NO(),
                    sameHeads ? NO() : d.head_options, headKept ? NO() : "all"];
        }
    });
})();
