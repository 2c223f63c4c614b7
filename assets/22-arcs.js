/* Arcs (components/figures.py arc_figure): drawn here on one 2-D canvas over the plot, from the
 * figure's layout.meta.lines (plotly.js's SVG paths cost 143-219 ms a draw; the app's cartesian bundle
 * has no WebGL traces). Hovering a token keeps only its arcs (a redraw, no request); a click keeps
 * them and follows the token in Token focus; hovering an arc shows the two tokens and its weight; a
 * click on a head's chip hides that head's arcs, a double click shows it alone (again: every head), as
 * BertViz's head colours do; the heads hidden stay hidden while the window moves or the layer changes. */
(function () {
    "use strict";
    const AE = window.AE;
    const HOVER_PX = 8;  // an arc is hovered within this many pixels of one of its points

    function decoded(spec, Type) {
        if (!spec || spec.bdata === undefined) { return spec; }
        if (spec._decoded) { return spec._decoded; }
        const bytes = Uint8Array.from(atob(spec.bdata), function (c) { return c.charCodeAt(0); });
        Object.defineProperty(spec, "_decoded", {value: new Type(bytes.buffer), enumerable: false});
        return spec._decoded;
    }

    /* A group of lines (components/figures.py _arc_lines) as the page draws it: per arc its query,
       key and weight, and its points (xs, ys: `points` an arc, NaN gaps) made from its ends (x0, x1)
       and signed height (h; 0: a self-loop), as figures.py _arc_points makes them. Made once a figure. */
    function arcsOf(line) {
        if (line._arcs) { return line._arcs; }
        const q = decoded(line.q, Int32Array), k = decoded(line.k, Int32Array), w = decoded(line.w, Float32Array);
        const x0 = decoded(line.x0, Float32Array), x1 = decoded(line.x1, Float32Array);
        const h = decoded(line.h, Float32Array), n = line.points, steps = n - 1, count = q.length;
        const xs = new Float32Array(count * n), ys = new Float32Array(count * n);
        for (let a = 0; a < count; a++) {
            const base = a * n, dx = x1[a] - x0[a], height = Math.abs(h[a]), sign = Math.sign(h[a]);
            for (let p = 0; p < steps; p++) {
                const t = p / (steps - 1);
                if (line.shape === "cross") {
                    xs[base + p] = x0[a] + dx * t * t * (3 - 2 * t);
                    ys[base + p] = 0.86 - 0.72 * t;
                } else if (h[a] === 0) {  // a self-loop
                    const angle = Math.PI * (1.5 + 2 * t);
                    xs[base + p] = x0[a] + 9 * Math.cos(angle);
                    ys[base + p] = 0.09 + 0.06 * (1 + Math.sin(angle));
                } else {
                    xs[base + p] = x0[a] + dx * t;
                    ys[base + p] = sign * (0.09 + height * Math.sin(Math.PI * t));
                }
            }
            xs[base + n - 1] = NaN; ys[base + n - 1] = NaN;
        }
        Object.defineProperty(line, "_arcs", {value: {q: q, k: k, w: w, xs: xs, ys: ys}, enumerable: false});
        return line._arcs;
    }

    /* An arc's hover text (as figures.py arc_hover_text writes it): the two tokens, the exact weight. */
    function arcText(meta, line, i) {
        const arcs = arcsOf(line), words = meta.words || {}, k = arcs.k[i];
        return meta.labels[arcs.q[i]] + " → " + meta.key_labels[String(k)] +
            (line.far ? " (" + words.token + " " + k + ")" : "") +
            "\n" + words.weight + " " + arcs.w[i].toFixed(4) +
            (meta.named ? " · " + words.head + " " + line.name : "");
    }
    AE.arcPoints = function (line) { const a = arcsOf(line); return {x: a.xs, y: a.ys}; };  // tests, exports
    AE.arcText = arcText;

    function arcMeta(gd) {
        const meta = gd && gd.layout && gd.layout.meta;
        return meta && meta.kind === "arcs" ? meta : null;
    }

    function hiddenHeads(gd) {
        const meta = arcMeta(gd), heads = meta ? (meta.heads || 0) : 0;
        if (gd._aeHiddenFor !== heads) { gd._aeHidden = new Set(); gd._aeHiddenFor = heads; }
        return gd._aeHidden;
    }

    /* The arcs shown now: [{line, arc}] of the lines of visible heads, of the hovered token only when
       one is hovered (and no token is clicked). */
    function shownArcs(gd, meta) {
        const hidden = hiddenHeads(gd), token = (meta.focus === null || meta.focus === undefined) ? gd._aeArcsToken : null;
        const out = [];
        (meta.lines || []).forEach(function (line) {
            if (hidden.has(line.head)) { return; }
            const queries = arcsOf(line).q;
            for (let i = 0; i < queries.length; i++) {
                if (token === null || token === undefined || queries[i] === token) { out.push({line: line, arc: i}); }
            }
        });
        return out;
    }

    function canvasOf(gd) {
        let canvas = gd.querySelector("canvas.ae-arcs");
        if (!canvas) {
            const container = gd.querySelector(".svg-container");
            const first = container && container.querySelector("svg.main-svg");
            if (!first) { return null; }
            canvas = document.createElement("canvas");
            canvas.className = "ae-arcs";
            canvas.setAttribute("aria-hidden", "true");
            canvas.style.cssText = "position:absolute;left:0;top:0;pointer-events:none;";
            first.insertAdjacentElement("afterend", canvas);
        }
        return canvas;
    }

    function draw(gd) {
        const meta = arcMeta(gd), full = gd._fullLayout;
        const old = gd.querySelector("canvas.ae-arcs");
        if (!meta || !full || !full.xaxis) { if (old) { old.remove(); } gd._aeArcsDrawn = 0; return; }
        const canvas = canvasOf(gd);
        if (!canvas) { return; }
        const ratio = window.devicePixelRatio || 1, width = full.width, height = full.height;
        if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
            canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
            canvas.style.width = width + "px"; canvas.style.height = height + "px";
        }
        const ctx = canvas.getContext("2d");
        ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
        ctx.clearRect(0, 0, width, height);
        const xa = full.xaxis, ya = full.yaxis;
        const shown = shownArcs(gd, meta);
        let current = null;
        shown.forEach(function (item) {
            const line = item.line;
            if (current !== line) {
                if (current) { ctx.stroke(); }
                current = line;
                ctx.beginPath();
                ctx.strokeStyle = line.color; ctx.lineWidth = line.width;
                ctx.setLineDash(line.far ? [2, 3] : []);
            }
            const arcs = arcsOf(line), xs = arcs.xs, ys = arcs.ys, n = line.points;
            let pen = false;
            for (let p = item.arc * n; p < (item.arc + 1) * n; p++) {
                const x = xs[p], y = ys[p];
                if (isNaN(x) || isNaN(y)) { pen = false; continue; }
                const px = xa._offset + xa.l2p(x), py = ya._offset + ya.l2p(y);
                if (pen) { ctx.lineTo(px, py); } else { ctx.moveTo(px, py); pen = true; }
            }
        });
        if (current) { ctx.stroke(); }
        gd._aeArcsDrawn = shown.length;
        gd._aeArcsDrawnAt = performance.now();  // bench/browser.py times browser-side redraws by it
        syncChips(gd);
    }

    /* ---- hover on an arc: the nearest drawn arc within HOVER_PX shows its tokens and weight */
    function tipOf(gd) {
        let tip = gd.querySelector(".ae-arc-tip");
        if (!tip) {
            tip = document.createElement("div");
            tip.className = "ae-arc-tip";
            tip.setAttribute("role", "status");
            tip.style.display = "none";
            gd.appendChild(tip);
        }
        return tip;
    }

    function hoverArc(gd, event) {
        const meta = arcMeta(gd), full = gd._fullLayout, tip = tipOf(gd);
        if (!meta || !full || !full.xaxis) { tip.style.display = "none"; return; }
        const box = gd.getBoundingClientRect();
        const mx = event.clientX - box.left, my = event.clientY - box.top;
        const xa = full.xaxis, ya = full.yaxis;
        let best = null, bestD = HOVER_PX * HOVER_PX;
        shownArcs(gd, meta).forEach(function (item) {
            const arcs = arcsOf(item.line), xs = arcs.xs, ys = arcs.ys, n = item.line.points;
            for (let p = item.arc * n; p < (item.arc + 1) * n; p++) {
                if (isNaN(xs[p])) { continue; }
                const dx = xa._offset + xa.l2p(xs[p]) - mx, dy = ya._offset + ya.l2p(ys[p]) - my;
                const d = dx * dx + dy * dy;
                if (d < bestD) { bestD = d; best = item; }
            }
        });
        if (!best) { tip.style.display = "none"; gd._aeArcHover = null; return; }
        gd._aeArcHover = best;
        tip.textContent = arcText(meta, best.line, best.arc);
        tip.style.borderColor = best.line.color.replace(/,[^,]*\)$/, ",1)");
        tip.style.left = (mx + 12) + "px"; tip.style.top = (my + 12) + "px";
        tip.style.display = "block";
    }

    /* ---- the graph: draw after every plotly.js draw, hover on the arcs */
    function watch(gd) {
        if (!gd || gd._aeArcsWatched || !gd.on) { return; }
        gd._aeArcsWatched = true;
        gd.on("plotly_afterplot", function () { draw(gd); });
        gd.addEventListener("mousemove", function (event) { hoverArc(gd, event); });
        gd.addEventListener("mouseleave", function () { tipOf(gd).style.display = "none"; });
        draw(gd);
    }
    function findGraph() { watch(AE.graphDiv("arc-view")); }
    new MutationObserver(function () {
        const gd = AE.graphDiv("arc-view");
        if (gd && !gd._aeArcsWatched) { watch(gd); }
    }).observe(document.documentElement, {childList: true, subtree: true});
    findGraph();

    function isolateArcs(hoverData, stored) {
        const gd = AE.graphDiv("arc-view"), figure = AE.shownFigure("arc-view", stored);
        if (!gd || !figure || !figure.layout || !figure.layout.meta || figure.layout.meta.kind !== "arcs") { return AE.NO(); }
        watch(gd);
        const p = AE.firstPoint(hoverData);
        const token = p && p.curveNumber === 0 ? p.pointIndex : null;
        if (token === gd._aeArcsToken) { return AE.NO(); }
        gd._aeArcsToken = token;
        draw(gd);
        return AE.NO();
    }

    /* ---- head chips: hide (click) or solo (double click) a head's arcs */
    function syncChips(gd) {
        const hidden = hiddenHeads(gd);
        document.querySelectorAll("#arc-legend .ae-head-chip").forEach(function (chip) {
            const pressed = hidden.has(Number(chip.dataset.head)) ? "false" : "true";
            if (chip.getAttribute("aria-pressed") !== pressed) { chip.setAttribute("aria-pressed", pressed); }
        });
    }

    function chipClick(event) {
        const chip = event.target.closest && event.target.closest("#arc-legend .ae-head-chip");
        const gd = AE.graphDiv("arc-view"), meta = arcMeta(gd);
        if (!chip || !meta) { return; }
        const head = Number(chip.dataset.head), heads = meta.heads || 0;
        if (!(head >= 0 && head < heads)) { return; }
        let hidden = hiddenHeads(gd);
        if (event.detail >= 2) {  // a double click: this head alone, or every head if it was alone already
            const before = gd._aeHiddenBefore || new Set();
            const alone = !before.has(head) && before.size === heads - 1;
            hidden = new Set();
            if (!alone) { for (let h = 0; h < heads; h++) { if (h !== head) { hidden.add(h); } } }
        } else {
            gd._aeHiddenBefore = new Set(hidden);
            hidden = new Set(hidden);
            if (hidden.has(head)) { hidden.delete(head); } else { hidden.add(head); }
        }
        gd._aeHidden = hidden;
        draw(gd);
    }
    document.addEventListener("click", chipClick);

    AE.arcTraces = function (gd) {  // the arcs as SVG traces, for the PNG / SVG exports (25-export.js)
        const meta = arcMeta(gd);
        if (!meta) { return []; }
        const hidden = hiddenHeads(gd);
        return (meta.lines || []).filter(function (line) { return !hidden.has(line.head); }).map(function (line) {
            const arcs = arcsOf(line);
            return {type: "scatter", mode: "lines", x: Array.from(arcs.xs), y: Array.from(arcs.ys),
                    hoverinfo: "skip", showlegend: false, line: {color: line.color, width: line.width, dash: line.far ? "dot" : "solid"}};
        });
    };

    AE.register({
        isolateArcs: isolateArcs,

        /* A click on a token in the arc view keeps its arcs (again: releases them) and follows it in
           Token focus: [arc focus, followed token], raw token indices. */
        arcClick: function (clickData, stored, current) {
            const p = AE.firstPoint(clickData), figure = AE.shownFigure("arc-view", stored);
            const meta = figure && figure.layout && figure.layout.meta;
            if (!p || p.curveNumber !== 0 || !meta || !meta.token_index) { return [AE.NO(), AE.NO()]; }
            const token = meta.token_index[p.pointIndex];
            if (token === undefined) { return [AE.NO(), AE.NO()]; }
            return token === current ? [null, AE.NO()] : [token, token];
        }
    });
})();
