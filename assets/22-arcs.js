/* Arcs (WebGL lines, components/figures.py arc_figure): hovering a token keeps only its arcs
 * (Plotly.restyle, no request); a click keeps them and follows the token in Token focus; a click on a
 * head's chip hides that head's arcs, a double click shows it alone (again: every head), as BertViz's
 * head colours do; the heads hidden stay hidden while the window moves or the layer changes. */
(function () {
    "use strict";
    const AE = window.AE;

    function decodeFloat32(spec) {
        if (!spec || spec.bdata === undefined) { return spec; }
        const bytes = Uint8Array.from(atob(spec.bdata), function (c) { return c.charCodeAt(0); });
        return new Float32Array(bytes.buffer);
    }

    function isolateArcs(hoverData, figure) {
        const gd = AE.graphDiv("arc-view");
        if (!gd || !figure || !figure.layout || !figure.layout.meta || figure.layout.meta.kind !== "arcs") { return AE.NO(); }
        const meta = figure.layout.meta;
        if (meta.focus !== null && meta.focus !== undefined) { return AE.NO(); }  // a clicked token wins
        const p = AE.firstPoint(hoverData);
        const token = p && p.curveNumber === 0 ? p.pointIndex : null;
        if (gd._aeArcsFigure !== figure) {  // a new figure: remember its full arcs
            gd._aeArcsFigure = figure;
            gd._aeArcs = figure.data.map(function (t) {
                return t.meta && t.meta.queries ? {x: decodeFloat32(t.x), y: decodeFloat32(t.y), text: t.text,
                                                   queries: t.meta.queries, points: t.meta.points || meta.points} : null;
            });
            gd._aeArcsToken = undefined;  // unknown: the next call restyles whatever it is
        }
        if (token === gd._aeArcsToken) { return AE.NO(); }
        gd._aeArcsToken = token;
        const xs = [], ys = [], texts = [], traces = [];
        gd._aeArcs.forEach(function (arcs, index) {
            if (!arcs) { return; }
            traces.push(index);
            if (token === null) { xs.push(arcs.x); ys.push(arcs.y); texts.push(arcs.text || null); return; }
            const n = arcs.points, keep = [];
            arcs.queries.forEach(function (q, i) { if (q === token) { keep.push(i); } });
            const x = new Float32Array(keep.length * n), y = new Float32Array(keep.length * n);
            keep.forEach(function (i, j) {
                x.set(arcs.x.subarray(i * n, (i + 1) * n), j * n);
                y.set(arcs.y.subarray(i * n, (i + 1) * n), j * n);
            });
            xs.push(x); ys.push(y);
            texts.push(arcs.text ? keep.map(function (i) { return arcs.text[i]; }) : null);
        });
        if (traces.length) { window.Plotly.restyle(gd, {x: xs, y: ys, text: texts}, traces); }
        return AE.NO();
    }

    /* ---- head chips: hide (click) or solo (double click) a head's arcs */
    function arcHeads(gd) {
        const meta = gd && gd.layout && gd.layout.meta;
        return meta && meta.kind === "arcs" ? (meta.heads || 0) : 0;
    }

    /* Each trace shown or not as gd._aeHidden says; the chips pressed or not to match. */
    function applyHidden(gd) {
        const heads = arcHeads(gd);
        if (gd._aeHiddenFor !== heads) { gd._aeHidden = new Set(); gd._aeHiddenFor = heads; }
        const hidden = gd._aeHidden, visible = [], traces = [];
        (gd.data || []).forEach(function (t, i) {
            if (!t.meta || t.meta.head === undefined) { return; }
            const want = hidden.has(t.meta.head) ? false : true;
            if ((t.visible === undefined ? true : t.visible) !== want) { visible.push(want); traces.push(i); }
        });
        document.querySelectorAll("#arc-legend .ae-head-chip").forEach(function (chip) {
            chip.setAttribute("aria-pressed", hidden.has(Number(chip.dataset.head)) ? "false" : "true");
        });
        if (traces.length) { window.Plotly.restyle(gd, {visible: visible}, traces); }
    }

    function chipClick(event) {
        const chip = event.target.closest && event.target.closest("#arc-legend .ae-head-chip");
        const gd = AE.graphDiv("arc-view");
        if (!chip || !gd) { return; }
        const head = Number(chip.dataset.head), heads = arcHeads(gd);
        if (!(head >= 0 && head < heads)) { return; }
        if (!gd._aeWatched) {  // a new figure (window moved, layer changed): the same heads stay hidden
            gd._aeWatched = true;
            gd.on("plotly_afterplot", function () { applyHidden(gd); });
        }
        if (gd._aeHiddenFor !== heads) { gd._aeHidden = new Set(); gd._aeHiddenFor = heads; }
        if (event.detail >= 2) {  // a double click: this head alone, or every head if it was alone already
            const before = gd._aeHiddenBefore || new Set();
            const alone = !before.has(head) && before.size === heads - 1;
            gd._aeHidden = new Set();
            if (!alone) { for (let h = 0; h < heads; h++) { if (h !== head) { gd._aeHidden.add(h); } } }
        } else {
            gd._aeHiddenBefore = new Set(gd._aeHidden);
            if (gd._aeHidden.has(head)) { gd._aeHidden.delete(head); } else { gd._aeHidden.add(head); }
        }
        applyHidden(gd);
    }
    document.addEventListener("click", chipClick);

    AE.register({
        isolateArcs: isolateArcs,

        /* A click on a token in the arc view keeps its arcs (again: releases them) and follows it in
           Token focus: [arc focus, followed token], raw token indices. */
        arcClick: function (clickData, figure, current) {
            const p = AE.firstPoint(clickData);
            const meta = figure && figure.layout && figure.layout.meta;
            if (!p || p.curveNumber !== 0 || !meta || !meta.token_index) { return [AE.NO(), AE.NO()]; }
            const token = meta.token_index[p.pointIndex];
            if (token === undefined) { return [AE.NO(), AE.NO()]; }
            return token === current ? [null, AE.NO()] : [token, token];
        }
    });
})();
