/* Arcs: hovering a token keeps only its arcs (Plotly.restyle, no request); a click keeps them and
 * follows the token in Token focus. */
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
                return t.meta && t.meta.queries ? {x: decodeFloat32(t.x), y: decodeFloat32(t.y), queries: t.meta.queries} : null;
            });
            gd._aeArcsToken = undefined;  // unknown: the next call restyles whatever it is
        }
        if (token === gd._aeArcsToken) { return AE.NO(); }
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
        return AE.NO();
    }

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
