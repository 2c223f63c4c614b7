/* Export: the open view's picture as PNG or SVG, drawn by plotly.js, and the files the server streams
 * (CSV, JSON, HTML). The server (callbacks/exports.py) says which graph and under which name, or which
 * link (components/export.py names every export): nothing of the naming is written twice. */
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
            const arcs = AE.arcTraces ? AE.arcTraces(gd) : [];  // the arc view draws its arcs on a canvas of its own
            const figure = arcs.length ? {data: gd.data.concat(arcs), layout: gd.layout} : gd;
            window.Plotly.downloadImage(figure, {format: format, filename: request.filename, scale: format === "png" ? 2 : 1});
            return [{format: format, filename: request.filename + "." + format, n: Date.now()}, ""];
        },
        // CSV, JSON and HTML: the server checked the request and sent the link of its download route
        // (callbacks/exports.py), which streams the file as an attachment; the browser follows it.
        exportLink: function (link) {
            if (!link || typeof link.url !== "string" || link.url.indexOf("download/") !== 0) { return AE.NO(); }
            const a = document.createElement("a");
            a.href = link.url;
            a.download = link.filename || "";
            a.rel = "noopener";
            a.style.display = "none";
            document.body.appendChild(a);
            a.click();
            a.remove();
            return {url: link.url, filename: link.filename, n: Date.now()};
        }
    });
})();
