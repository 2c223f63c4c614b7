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
        return window.Plotly.update(gd, update, layout, indices);
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
        if (meta.drawn && meta.drawn.layer === layer && meta.drawn.head === selected) { return true; }  /* drawn early */
        const selection = gridSelection(meta, selected);
        /* only what changed, each at its cheapest: the titles' colours (a restyle of style alone), the
           outline (shapes: drawn alone), the title; the picture only for another layer (a redraw) */
        const traces = {1: {"textfont.color": selection.colors}};
        if (meta.layer !== layer) { traces[0] = {source: meta.sources[layer]}; }
        meta.layer = layer;  /* the page's own bookkeeping: a relayout of meta would redraw the whole plot */
        meta.drawn = {layer: layer, head: selected};
        drawing = draw(gd, traces, {shapes: selection.shapes, "title.text": meta.titles[layer] + titleNote(gd.layout)});
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

    /* Another head, the mean of heads, or another layer, in the heatmap, when it shows one tile of a layer's
       grid picture or a layer's mean picture (the figure carries every layer's mean): a head moves the grid
       picture so that head's tile covers the axes; another layer takes the grid's picture of that layer
       (the head grid holds them all). False when the server must draw. */
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
        const head = String(v["head-select.value"]), layer = v["layer-slider.value"], mean = head === "mean";
        if (!Number.isInteger(layer) || layer < 0 ||
            (!mean && (!/^[0-9]+$/.test(head) || Number(head) >= meta.grid.tiles.length))) { return false; }
        const h = mean ? "mean" : Number(head);
        if (meta.drawn && meta.drawn.layer === layer && meta.drawn.head === h) { return true; }  /* drawn early */
        if (meta.grid_layer === undefined && meta.head !== "mean") {  /* the grid picture the server sent */
            meta.grid_layer = meta.layer;
            meta.grid_source = gd.data[0].source;
        }
        let trace, title;
        if (mean) {
            if (!meta.means || layer >= meta.means.length || !meta.mean_title_template) { return false; }
            trace = {source: meta.means[layer], x0: 0, y0: 0};
            title = AE.fmt(meta.mean_title_template, {layer: layer});
        } else {
            const source = gridPicture(meta, layer);
            if (!source) { return false; }
            const g = meta.grid, row = Math.floor(h / g.columns), column = h % g.columns;
            trace = {source: source, x0: -column * g.stride_x, y0: -(row * g.stride_y + g.band)};
            title = meta.title_template ? AE.fmt(meta.title_template, {layer: layer, head: h}) : meta.titles[h];
            meta.grid_layer = layer;
            meta.grid_source = source;
        }
        if (trace.source === gd.data[0].source) { delete trace.source; }  /* the same picture: moved, not decoded */
        meta.head = h;
        meta.layer = layer;
        meta.drawn = {layer: layer, head: h};
        drawing = draw(gd, {0: trace}, {"title.text": title + titleNote(gd.layout)});
        return true;
    }

    /* A layer's grid picture for the heatmap: the one it holds, or the head grid's (same analysis, same
       geometry). Null when neither has it. */
    function gridPicture(meta, layer) {
        if (meta.grid_layer === layer && meta.grid_source) { return meta.grid_source; }
        const grid = shown("head-grid"), gm = grid && grid.layout.meta, g = meta.grid;
        if (!gm || !gm.sources || gm.key !== meta.key || gm.attention_kind !== meta.attention_kind ||
            gm.stride_x !== g.stride_x || gm.stride_y !== g.stride_y || !meta.title_template ||
            layer >= gm.sources.length) {
            return null;
        }
        return gm.sources[layer];
    }

    /* --- Early: the layer slider's keys and the head selector's options, drawn on their own DOM event.
       Dash hears of a change only after its renderer has passed the value along (tens of ms of promise jobs
       before the next frame: the profile in docs/benchmarks.md). When the browser can draw the change alone,
       it draws it at once, lets that frame reach the screen, and only then hands the same event to the page
       (the slider or the selector takes it as usual: Dash's state, the URL and the gate follow; the gate
       finds it drawn already). Anything the browser cannot draw passes through untouched. */
    let controls = null;  /* every control the views depend on, as the gate last saw them (it sees every change) */
    let drawing = null;   /* the promise of the browser's last draw */
    let replaying = false;
    const DRAW_WAIT_MS = 150;
    const later = [];

    function inBrowser(changed, values) {
        drawing = null;
        return gridInBrowser(changed, values) || heatmapInBrowser(changed, values);
    }

    /* The event again, for the page, once the picture drawn early is on screen. */
    function handOn(replay) {
        later.push(replay);
        if (later.length > 1) { return; }
        const run = function () {
            const all = later.splice(0);
            replaying = true;
            try { all.forEach(function (f) { f(); }); } finally { replaying = false; }
        };
        /* a draw that a newer one replaces may never settle (plotly.js): the event is handed on at the latest
           DRAW_WAIT_MS later, never left waiting (the events after it would all wait behind it) */
        const drawn = Promise.resolve(drawing).catch(function () {});
        Promise.race([drawn, new Promise(function (done) { setTimeout(done, DRAW_WAIT_MS); })]).then(function () {
            window.requestAnimationFrame(function () { setTimeout(run, 0); });
        });
    }

    /* The sliders taken early: the layer, and the arc view's window (its first token). */
    const SLIDERS = ["layer-slider", "arc-start"];
    const sliderPending = {};  /* by slider: the value handed on but not yet taken by the page */
    function sliderKey(event) {
        const thumb = event.target;
        const slider = thumb && thumb.closest ? SLIDERS.find(function (id) { return thumb.closest("#" + id); }) : null;
        if (replaying || !controls || !slider || thumb.getAttribute("role") !== "slider" ||
            event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) {
            return;
        }
        const prop = slider + ".value", pending = sliderPending[slider];
        const box = document.querySelector("#" + slider + " input[type='number']");
        if (box && box.step && box.step !== "1") { return; }  /* keys move by one: a slider of other steps goes on as usual */
        const step = {ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1}[event.key];
        const min = Number(thumb.getAttribute("aria-valuemin")), max = Number(thumb.getAttribute("aria-valuemax"));
        const now = pending !== undefined && pending !== null ? pending : Number(thumb.getAttribute("aria-valuenow"));
        if (![min, max, now].every(Number.isInteger)) { return; }
        let value = step !== undefined ? now + step : event.key === "Home" ? min : event.key === "End" ? max : null;
        if (value === null) { return; }
        value = Math.max(min, Math.min(max, value));
        if (value === now) { return; }
        if (!(prop in controls)) { return; }
        const values = Object.assign({}, controls);
        values[prop] = value;
        /* handed on as the value itself, not the key again: keys that come faster than the page takes them
           (a key held down) would each step from the same value the slider still shows */
        const replay = function () {
            window.dash_clientside.set_props(slider, {value: value});
            if (sliderPending[slider] === value) { sliderPending[slider] = null; }
        };
        if (inBrowser([prop], values)) { handOn(replay); }
        else if (!direct([prop], values, replay)) { return; }
        event.preventDefault();
        event.stopPropagation();
        controls = values;
        sliderPending[slider] = value;
    }

    function headOption(event) {
        const option = event.target && event.target.closest ? event.target.closest(".dash-dropdown-option") : null;
        const select = document.getElementById("head-select");
        if (replaying || !controls || !option || !select) { return; }
        const list = option.closest("[id]");
        if (!list || list.id !== select.getAttribute("aria-controls")) { return; }
        const input = option.querySelector("input");
        const value = input ? input.value : null;
        if (value === null || value === String(controls["head-select.value"])) { return; }
        const values = Object.assign({}, controls, {"head-select.value": value});
        const replay = function () { option.click(); };
        if (inBrowser(["head-select.value"], values)) { handOn(replay); }
        else if (!direct(["head-select.value"], values, replay)) { return; }
        event.preventDefault();
        event.stopPropagation();
        controls = values;
    }

    /* What the browser cannot draw alone, for a view whose answer is its figure (and a notice; its ViewSpec
       says ``direct``, AE.views()): asked of the router straight from the event (POST _ae-view,
       callbacks/router.py direct), drawn with
       Plotly.react on the graph div, then the event handed on; the gate, seeing the same controls, sends
       no second request. False (the event goes on as usual) for other views. */
    let asked = 0;
    let held = {};  /* the router's states (callbacks/router.py STATES: what the page holds, e.g. the atlas's
                       table), as the gate last saw them or a direct answer set them: sent with a direct request */
    let fetched = null;  /* the controls (as signature) the last direct answer was asked for */

    function signature(values) {
        return JSON.stringify(Object.keys(values).sort().map(function (k) { return [k, values[k]]; }));
    }

    function direct(changed, values, replay) {
        const view = AE.views()[values["view-tabs.active_tab"]];
        if (!view || !view.direct || !window.fetch || !AE.graphDiv(view.graph)) { return false; }
        const n = ++asked;
        fetched = signature(values);
        window.fetch("_ae-view", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify({values: Object.assign({}, held, values), changed: changed})})
            .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error(String(r.status))); })
            .then(function (answer) {
                if (n !== asked) { return; }  /* a later change is on its way: its answer draws */
                const outputs = (answer && answer.outputs) || {};
                const apply = function () {
                    const rest = [];
                    drawing = null;
                    Object.keys(outputs).forEach(function (key) {
                        const at = key.lastIndexOf("."), id = key.slice(0, at), prop = key.slice(at + 1);
                        if (key in held) { held[key] = outputs[key]; }
                        const gd = prop === "figure" && id === view.graph ? AE.graphDiv(id) : null;
                        if (gd) { fitToColumn(gd); drawing = window.Plotly.react(gd, outputs[key]); }
                        /* the control being changed is set by the event handed on, not twice */
                        else if (!(replay && changed.indexOf(key) >= 0)) { rest.push([id, prop, outputs[key]]); }
                    });
                    handOn(function () {
                        rest.forEach(function (o) { const props = {}; props[o[1]] = o[2]; window.dash_clientside.set_props(o[0], props); });
                        if (replay) { replay(); }
                    });
                };
                if (replay) { apply(); } else { whenShown(view.graph, apply); }
            })
            .catch(function () {
                if (n !== asked) { return; }
                fetched = null;
                if (replay) { handOn(replay); return; }  /* the page's own path: the gate asks the router */
                window.dash_clientside.set_props("view-request", {data: {changed: changed, n: Date.now()}});
            });
        return true;
    }

    /* A graph first drawn while its tab was hidden has plotly.js's fallback size (700 px wide), and
       Plotly.react keeps a size once made: the next draw would be at 700 px, then again at its column's
       width when Dash's resize observer notices (~170 ms later, a visible jump). Asked to size itself
       anew, plotly.js draws it once, at the width its column gives it. */
    function fitToColumn(gd) {
        const full = gd._fullLayout, width = parseFloat(window.getComputedStyle(gd).width);
        if (full && full._initialAutoSizeIsDone && width > 0 && Math.abs(full.width - width) > 1) {
            full._initialAutoSizeIsDone = false;
        }
    }

    /* Runs ``then`` once the graph is on screen (a tab just opened: React shows its pane a little later). */
    function whenShown(graphId, then, tries) {
        const gd = AE.graphDiv(graphId);
        if (gd && gd.offsetParent !== null) { then(); return; }
        if ((tries || 0) > 120) { then(); return; }
        window.requestAnimationFrame(function () { whenShown(graphId, then, (tries || 0) + 1); });
    }

    /* The tab's pane and link shown as open, by the page itself (react-bootstrap's classes: React sets the
       same ones when the click handed on reaches it). False when the page does not have them. */
    function paneOf(tab) {  /* react-bootstrap's pane of a tab (assets/28-tabs.js reads the same ids) */
        return document.querySelector("[role='tabpanel'][id$='-tabpane-" + CSS.escape(tab) + "']");
    }

    function showTab(tabs, tab) {
        const pane = paneOf(tab);
        const item = document.getElementById(tab + "-tab"), link = item && item.querySelector(".nav-link");
        if (!pane || !link || !pane.parentElement) { return false; }
        Array.prototype.forEach.call(pane.parentElement.children, function (other) {
            if (other !== pane) { other.classList.remove("active", "show"); }
        });
        pane.classList.add("active", "show");
        tabs.querySelectorAll(".nav-link.active").forEach(function (other) { other.classList.remove("active"); });
        link.classList.add("active");
        return true;
    }

    /* A view tab opened: its figure asked for at once and the tab shown by the page itself, so the answer
       is drawn the moment it comes; the click is handed on once it is on screen (Dash's tab switch, a
       whole re-render of the tabs, ~50 ms, then follows, and the gate sends no second request). A view
       the router does not answer directly: the click goes on untouched. */
    function tabClick(event) {
        const tabs = document.getElementById("view-tabs");
        const item = event.target && event.target.closest ? event.target.closest(".nav-item") : null;
        if (replaying || !controls || !tabs || !item || !tabs.contains(item) || !/-tab$/.test(item.id || "")) { return; }
        const tab = item.id.replace(/-tab$/, "");
        if (tab === controls["view-tabs.active_tab"] || !AE.views()[tab]) { return; }
        const link = item.querySelector(".nav-link") || event.target;
        const values = Object.assign({}, controls, {"view-tabs.active_tab": tab});
        const replay = function () { link.click(); };
        if (!paneOf(tab)) {
            if (direct(["view-tabs.active_tab"], values, null)) { controls = values; }  /* Dash opens it, drawn when shown */
            return;
        }
        if (!direct(["view-tabs.active_tab"], values, replay)) { return; }
        event.preventDefault();
        event.stopPropagation();
        showTab(tabs, tab);
        controls = values;
    }

    document.addEventListener("keydown", sliderKey, true);
    document.addEventListener("click", headOption, true);
    document.addEventListener("click", tabClick, true);

    AE.register({
        gate: function () {
            const ctx = window.dash_clientside.callback_context;
            const changed = ctx.triggered.map(function (t) { return t.prop_id; });
            const last = ctx.states["view-request.data"];
            controls = Object.assign({}, ctx.inputs);
            held = Object.assign({}, ctx.states);
            delete held["view-request.data"];
            if (fetched !== null && fetched === signature(ctx.inputs)) { fetched = null; return AE.NO(); }  /* drawn */
            fetched = null;
            if (!changed.some(function (c) { return c in ctx.inputs; })) { return AE.NO(); }  /* the page's first call */
            if (inBrowser(changed, ctx.inputs)) { return AE.NO(); }
            return {changed: changed, n: ((last && last.n) || 0) + 1};
        }
    });
})();
