/* Export: the open view's picture as PNG or SVG, drawn by plotly.js. The server (callbacks/exports.py)
 * says which graph and under which name (components/export.py names every export): nothing of the
 * naming is written twice. */
(function () {
    "use strict";
    const AE = window.AE;

    AE.register({
        exportImage: function (request) {
            if (!request || !request.graph || !request.filename) { return [AE.NO(), AE.NO()]; }
            const gd = AE.graphDiv(request.graph);
            if (!gd || !gd.data || !gd.data.length) {
                return [AE.NO(), AE.words().nothing_to_export || "Nothing to export yet."];
            }
            const format = request.format === "svg" ? "svg" : "png";
            window.Plotly.downloadImage(gd, {format: format, filename: request.filename, scale: format === "png" ? 2 : 1});
            return [{format: format, filename: request.filename + "." + format, n: Date.now()}, ""];
        }
    });
})();
