/* Attention Explorer in the browser: what needs no request. One file a feature, loaded in this order:
 *
 * 20-core.js      what the others share (window.AE): the page's words and views, figure helpers
 * 21-hover.js     hover tooltips of the attention pictures (grid, heatmap, overview): exact values, one step
 * 22-arcs.js      arcs: one token's arcs on hover, a click keeps them
 * 23-gate.js      the gate every control of the views passes (layer or head drawn in the browser)
 * 24-navigate.js  clicks that open a head, a token or a row
 * 25-export.js    PNG / SVG of the open view, under the name the server gives it; the download links
 * 26-url.js       the page's state in its address; the language switch
 * 27-page.js      the page's language, Ctrl+Enter
 * 28-tabs.js      the view tabs' ids and states for screen readers
 * 29-zoom.js      long texts: box zoom to the exact tile, exact hover of pooled pictures
 *
 * Each registers its functions in window.dash_clientside.attention (callbacks/*.py name them).
 */
(function () {
    "use strict";
    const AE = window.AE = window.AE || {};

    AE.NO = function () { return window.dash_clientside.no_update; };

    /* A data attribute of the page's ae-i18n element, read once: its words (components/layout.py
       browser_words) and its views (callbacks/registry.py browser_table, one declaration a view). */
    const cache = {};
    function attribute(name) {
        if (cache[name] === undefined) {
            const el = document.getElementById("ae-i18n");
            let value = {};
            try { value = el ? JSON.parse(el.getAttribute(name) || "{}") : {}; } catch (e) { value = {}; }
            if (!el) { return value; }  /* the page is not there yet: read again next time */
            cache[name] = value;
        }
        return cache[name];
    }
    AE.words = function () { return attribute("data-strings"); };
    /* By tab id: {name: its URL name, graph: its main figure's id, direct: asked for by POST _ae-view}. */
    AE.views = function () { return attribute("data-views"); };

    AE.fmt = function (template, values) {
        return String(template).replace(/\{(\w+)\}/g, function (all, name) {
            return values[name] === undefined ? all : String(values[name]);
        });
    };

    AE.graphDiv = function (graphId) {
        return document.querySelector("#" + graphId + " .js-plotly-plot");
    };

    /* The figure a graph shows: the one plotly.js holds on its div (the browser may have drawn it after
       Dash's figure prop was set: assets/23-gate.js), else Dash's ``stored`` figure prop. */
    AE.shownFigure = function (graphId, stored) {
        const gd = AE.graphDiv(graphId);
        return gd && gd.layout && gd.layout.meta && gd.data ? {data: gd.data, layout: gd.layout} : stored;
    };

    AE.firstPoint = function (event) {
        return event && event.points && event.points.length ? event.points[0] : null;
    };

    /* Which tile of a grid figure the cell (x, y) is in, and where in it; null in a gap or title band. */
    AE.gridCell = function (meta, x, y) {
        const col = Math.floor(x / meta.stride_x), row = Math.floor(y / meta.stride_y);
        const dx = x - col * meta.stride_x, dy = y - row * meta.stride_y - meta.band;
        const cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells;
        if (col < 0 || row < 0 || col >= meta.columns || dx >= cx || dy < 0 || dy >= cy) { return null; }
        const tile = row * meta.columns + col;
        if (tile >= meta.tiles.length) { return null; }
        return {tile: tile, id: meta.tiles[tile], key: dx, query: dy};
    };

    AE.overviewCell = function (meta, x, y) {
        if (x < 0 || y < 0) { return null; }
        const sy = meta.stride_y || meta.stride;
        const head = Math.floor(x / meta.stride), layer = Math.floor(y / sy);
        if (x % meta.stride >= (meta.cells_x || meta.cells) || y % sy >= (meta.cells_y || meta.cells)) { return null; }
        if (head < 0 || head >= meta.heads || layer < 0 || layer >= meta.layers) { return null; }
        return {layer: layer, head: head};
    };

    /* Adds functions to the namespace the callbacks name (ClientsideFunction("attention", ...)). */
    AE.register = function (functions) {
        window.dash_clientside = window.dash_clientside || {};
        window.dash_clientside.attention = Object.assign({}, window.dash_clientside.attention, functions);
    };
})();
