/* Hover tooltips of the attention pictures (grid, heatmap, overview): the EXACT weight under the pointer.
 *
 * A long text's figures carry their (pooled) exact values (assets/29-zoom.js). A short text's picture is a
 * palette image: its hover asks the server once for the exact float32 map it draws (GET exact/<what>,
 * callbacks/hover.py; the figure's layout.meta.src names the analysis, mode and switches), on the FIRST
 * hover over that map, never on a layer or head change, and keeps the last MAX_MAPS maps in the page.
 * Until a map is there the tooltip waits for it (localhost-fast); if it cannot come, the tooltip gives
 * the value read back from the picture's palette colour, marked "≈". */
(function () {
    "use strict";
    const AE = window.AE;
    const MAX_MAPS = 8;
    const RETRY_MS = 10000;  /* a map that could not come is asked for again after this long */
    const maps = new Map();  /* url -> {values: Float32Array | null, shape: [..], failed, promise}; oldest first */
    const latest = {};  /* graph id -> the number of its last hover: an answer for an older one is dropped */

    /* The route's address for one map of the analysis and view ``src`` (relative to the page, as the
       download links are). */
    function mapUrl(what, src, layer, head) {
        const q = new URLSearchParams();
        q.append("key", src.key);
        q.append("layer", String(layer));
        q.append("head", String(head));
        q.append("mode", src.mode || "raw");
        (src.switches || []).forEach(function (s) { q.append("switches", s); });
        if (src.kind) { q.append("kind", src.kind); }
        if (src.pair) { q.append("pair", src.pair); }
        return "exact/" + what + "?" + q.toString();
    }

    /* The map at ``url``: the entry when it is there (or has failed), else a Promise of the entry. */
    AE.exactMap = function (url) {
        let entry = maps.get(url);
        if (entry) {
            maps.delete(url);
            maps.set(url, entry);  /* the most recently used last */
            return entry.values || entry.failed ? entry : entry.promise;
        }
        entry = {values: null, shape: null, failed: false};
        entry.promise = fetch(url, {credentials: "same-origin"}).then(function (response) {
            if (!response.ok) { throw new Error(String(response.status)); }
            const shape = (response.headers.get("X-Shape") || "").split(",").map(Number);
            return response.arrayBuffer().then(function (buffer) {
                const values = new Float32Array(buffer);
                if (!shape.length || shape.reduce(function (a, b) { return a * b; }, 1) !== values.length) {
                    throw new Error("shape");
                }
                entry.values = values;
                entry.shape = shape;
                return entry;
            });
        }).catch(function () {
            entry.failed = true;  /* "≈" for now; asked again on a hover RETRY_MS later (a 429 passes) */
            setTimeout(function () { if (maps.get(url) === entry) { maps.delete(url); } }, RETRY_MS);
            return entry;
        });
        maps.set(url, entry);
        while (maps.size > MAX_MAPS) { maps.delete(maps.keys().next().value); }
        return entry.promise;
    };

    /* The tooltip of hover number ``n`` of ``graphId`` from the map at ``url``: ``exact(entry)`` once it is
       there, ``approximate()`` when it cannot come; a Promise while it is on its way. */
    function withMap(graphId, n, url, exact, approximate) {
        const got = AE.exactMap(url);
        const finish = function (entry) { return entry && entry.values ? exact(entry) : approximate(); };
        if (!(got instanceof Promise)) { return finish(got); }
        return got.then(function (entry) { return latest[graphId] === n ? finish(entry) : undefined; });
    }

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

    /* The palette's value at (x, y), "≈" before it (the picture's colour, not the weight): the fallback. */
    function approxText(graphId, figure, x, y) {
        const level = pixelLevel(graphId, figure, x, y);
        if (level === null) { return "?"; }
        const meta = figure.layout.meta;
        return "≈" + (level * (meta.vmax || 1) / meta.levels).toFixed(2);
    }

    /* An exact value as the tooltips print it (29-zoom.js AE.exactText); NaN: a cell the pair filter left out. */
    function valueText(v) {
        if (v !== v) { return AE.words().left_out || "left out by the pair filter"; }
        return AE.exactText(v) || "?";
    }

    /* The largest value of rows [r0, r1) x columns [c0, c1) of a (rows, cols) map (a pooled cell). */
    function blockMax(values, cols, r0, r1, c0, c1) {
        let best = -Infinity;
        for (let r = r0; r < r1; r++) {
            for (let c = c0; c < c1; c++) { const v = values[r * cols + c]; if (v > best) { best = v; } }
        }
        return best === -Infinity ? NaN : best;
    }

    function heatmapText(graphId, figure, meta, n, x, y) {
        const q = meta.queries[y], k = meta.keys[x];
        if (q === undefined || k === undefined) { return null; }
        const words = AE.words(), src = meta.src;
        const show = function (share, product) {
            if (meta.row_scale && product !== null) {  // weighted by value norm: the unscaled product too
                return q + " → " + k + ": " + AE.fmt(words.value_share || "{share} (α·‖f(x)‖ = {product})",
                                                     {share: share, product: product});
            }
            return q + " → " + k + ": " + share;
        };
        const approximate = function () {
            const share = approxText(graphId, figure, x, y);
            return show(share, share === "?" || !meta.row_scale ? null
                : "≈" + (Number(share.slice(1)) * meta.row_scale[y]).toFixed(3));
        };
        if (!src || !src.key) { return approximate(); }
        /* the layer and head drawn: the gate may have moved the picture to another (assets/23-gate.js) */
        const layer = meta.grid && meta.layer !== undefined ? meta.layer : src.layer;
        const head = meta.grid && meta.head !== undefined ? meta.head : src.head;
        return withMap(graphId, n, mapUrl("head", src, layer, head), function (entry) {
            if (entry.shape[0] !== meta.queries.length || entry.shape[1] !== meta.keys.length) { return approximate(); }
            const v = entry.values[y * entry.shape[1] + x];
            return show(valueText(v), meta.row_scale && v === v ? AE.exactText(v * meta.row_scale[y]) : null);
        }, approximate);
    }

    function gridText(graphId, figure, meta, n, cell, x, y) {
        const words = AE.words(), src = meta.src, b = meta.block;
        const name = (meta.tile_names && meta.tile_names[cell.tile]) || (meta.tile + " " + cell.id);
        const keys = meta.key_tokens || meta.tokens, nKeys = meta.keys || meta.seq;
        const show = function (weight) {
            if (b === 1) { return name + " · " + meta.tokens[cell.query] + " → " + keys[cell.key] + ": " + weight; }
            const span = function (i, last) { return (i * b) + "–" + Math.min(last, i * b + b - 1); };
            return AE.fmt(words.pooled_cell || "{tile} · tokens {query} → {key}: max {weight}",
                          {tile: name, query: span(cell.query, meta.seq - 1), key: span(cell.key, nKeys - 1), weight: weight});
        };
        const gd = AE.graphDiv(graphId);
        const approximate = function () { return show(approxText(graphId, figure, x, y)); };
        if (!src || !src.key || !gd) { return approximate(); }
        /* tiles are heads of the layer drawn (the gate may have drawn another: meta.layer), or, in
           Rollout mode, layers */
        const layer = meta.tile === "layer" ? cell.id : meta.layer;
        const head = meta.tile === "layer" ? "mean" : cell.id;
        return withMap(graphId, n, mapUrl("head", src, layer, head), function (entry) {
            const rows = entry.shape[0], cols = entry.shape[1];
            if (rows !== meta.seq || cols !== nKeys) { return approximate(); }
            const r0 = cell.query * b, c0 = cell.key * b;
            return show(valueText(b === 1 ? entry.values[r0 * cols + c0]
                : blockMax(entry.values, cols, r0, Math.min(rows, r0 + b), c0, Math.min(cols, c0 + b))));
        }, approximate);
    }

    function overviewText(graphId, meta, n, x, y) {
        const words = AE.words();
        const cell = AE.overviewCell(meta, x, y);
        if (!cell) { return null; }
        const plain = function () {
            return AE.fmt(words.overview_cell || "layer {layer} · head {head}", {layer: cell.layer, head: cell.head});
        };
        const src = meta.src;
        if (!src || !src.key) { return plain(); }
        const cx = meta.cells_x || meta.cells, cy = meta.cells_y || meta.cells, sy = meta.stride_y || meta.stride;
        const col = x % meta.stride, row = y % sy, b = meta.block || 1;
        return withMap(graphId, n, mapUrl("overview", src, cell.layer, "mean"), function (entry) {
            if (entry.shape[0] !== meta.heads || entry.shape[1] !== cy || entry.shape[2] !== cx) { return plain(); }
            const v = entry.values[(cell.head * cy + row) * cx + col];
            let text;
            if (b === 1 && meta.tokens) {
                text = meta.tokens[row] + " → " + (meta.key_tokens || meta.tokens)[col] + ": " + valueText(v);
            } else {
                const span = function (i) { return "#" + (i * b) + "–" + (i * b + b - 1); };
                const mean = meta.how === "mean";
                text = v !== v ? valueText(v) : AE.fmt((mean ? words.block_mean : words.block_max) ||
                    "tokens {query} → {key}: max {weight}", {query: span(row), key: span(col), weight: valueText(v)});
            }
            return AE.fmt(words.overview_value || "layer {layer} · head {head} · {cell}",
                          {layer: cell.layer, head: cell.head, cell: text});
        }, plain);
    }

    function hoverFor(graphId) {
        return function (hoverData, stored) {
            const hide = [false, AE.NO(), ""];
            const n = latest[graphId] = (latest[graphId] || 0) + 1;
            /* the figure as drawn: the gate may have moved it on since Dash's prop (assets/23-gate.js) */
            const figure = AE.shownFigure(graphId, stored);
            const p = AE.firstPoint(hoverData);
            if (!p || !figure || !figure.layout || !figure.layout.meta || p.curveNumber !== 0) { return hide; }
            const meta = figure.layout.meta;
            const x = Math.round(p.x), y = Math.round(p.y);
            let text = null;
            if (meta.kind === "overview") {
                text = overviewText(graphId, meta, n, x, y);
            } else if (meta.kind === "heatmap" && meta.exact) {  /* a long text: exact values (29-zoom.js) */
                text = AE.exactHover(meta, p.x, p.y);
            } else if (meta.kind === "heatmap") {
                text = heatmapText(graphId, figure, meta, n, x, y);
            } else if (meta.kind === "head-grid") {
                const cell = AE.gridCell(meta, x, y);
                if (cell) {
                    const name = (meta.tile_names && meta.tile_names[cell.tile]) || (meta.tile + " " + cell.id);
                    text = meta.values ? AE.exactGridHover(meta, cell, name)  /* a long text (29-zoom.js) */
                        : gridText(graphId, figure, meta, n, cell, x, y);
                }
            }
            const bbox = p.bbox;
            const answer = function (t) {
                if (t === undefined) { return [AE.NO(), AE.NO(), AE.NO()]; }  /* a later hover answers */
                return t ? [true, bbox, t] : hide;
            };
            return text instanceof Promise ? text.then(answer) : answer(text);
        };
    }

    /* ONE step: the tooltip is drawn from plotly.js's own hover event on the graph div, set on the page's
       tooltip component directly (dash_clientside.set_props: no Dash callback, no renderer hop). */
    const TOOLTIPS = {"head-grid": "head-grid-tooltip", "head-heatmap": "head-heatmap-tooltip",
                      "model-overview": "model-overview-tooltip"};
    const hovers = {};
    Object.keys(TOOLTIPS).forEach(function (graphId) { hovers[graphId] = hoverFor(graphId); });

    function setTip(graphId, answer) {
        const set = window.dash_clientside && window.dash_clientside.set_props;
        if (!set || !answer) { return; }
        const props = {};
        ["show", "bbox", "children"].forEach(function (name, i) {
            if (answer[i] !== AE.NO()) { props[name] = answer[i]; }
        });
        if (Object.keys(props).length) { set(TOOLTIPS[graphId], props); }
    }

    function onHover(graphId, event) {
        const answer = hovers[graphId](event, null);
        if (answer instanceof Promise) { answer.then(function (a) { setTip(graphId, a); }); } else { setTip(graphId, answer); }
    }

    function onUnhover(graphId) {
        latest[graphId] = (latest[graphId] || 0) + 1;  /* an answer still on its way is for nothing now */
        setTip(graphId, [false, AE.NO(), AE.NO()]);
    }

    /* plotly.js's events are bound to each graph div once it is drawn (a div Dash mounts again is a new
       one): when the pointer first comes over it, before plotly.js's own mousemove computes a hover. */
    document.addEventListener("mouseover", function (event) {
        const holder = event.target && event.target.closest && event.target.closest("#head-grid, #head-heatmap, #model-overview");
        const gd = holder && holder.querySelector(".js-plotly-plot");
        if (!gd || gd.__aeHover || typeof gd.on !== "function") { return; }
        gd.__aeHover = true;
        gd.on("plotly_hover", function (e) { onHover(holder.id, e); });
        gd.on("plotly_unhover", function () { onUnhover(holder.id); });
    }, true);

    /* plotly.js 4.1.1 reads an image trace's decoded picture (trace._canvas) on hover before it exists:
       between a new picture's draw and the end of its decoding, a hover (a pointer move, or plotly.js's own
       re-hover after a redraw under a still pointer) throws "Cannot read properties of undefined (reading
       'el')". The image trace type's hover (one module object, shared by every graph) answers nothing
       until the picture is decoded: the next move hovers as usual. */
    let imageHoverGuarded = false;
    function guardImageHover(gd) {
        if (imageHoverGuarded) { return; }
        (gd._fullData || []).forEach(function (trace) {
            const module = trace._module;
            if (trace.type !== "image" || !module || typeof module.hoverPoints !== "function" || module.__aeGuarded) { return; }
            const hoverPoints = module.hoverPoints;
            module.hoverPoints = function (pointData) {
                const t = pointData && pointData.cd && pointData.cd[0] && pointData.cd[0].trace;
                if (t && t._hasSource && !t._canvas) { return []; }
                return hoverPoints.apply(this, arguments);
            };
            module.__aeGuarded = true;
            imageHoverGuarded = true;  /* one module for every graph: done once */
        });
    }
    ["mouseover", "mousemove"].forEach(function (type) {
        document.addEventListener(type, function (event) {
            const gd = event.target && event.target.closest ? event.target.closest(".js-plotly-plot") : null;
            if (gd) { guardImageHover(gd); }
        }, true);
    });

    AE.register({
        gridHover: hovers["head-grid"],
        heatmapHover: hovers["head-heatmap"],
        overviewHover: hovers["model-overview"]
    });
})();
