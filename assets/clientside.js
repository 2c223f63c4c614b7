/* Attention Explorer client-side code: Ctrl+Enter analyzes; the head grid's hover tooltip. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    attention: {
        /* Grid and overview send weights as bytes (0-255); this turns a hover into readable text. */
        tileHover: function (hoverData, figure) {
            const hide = [false, window.dash_clientside.no_update, ""];
            if (!hoverData || !hoverData.points || !hoverData.points.length || !figure || !figure.layout) {
                return hide;
            }
            const meta = figure.layout.meta || {};
            const p = hoverData.points[0];
            const x = Math.round(p.x), y = Math.round(p.y);
            if (meta.kind === "overview") {
                const layer = Math.floor(y / meta.stride), head = Math.floor(x / meta.stride);
                if (x % meta.stride === meta.cells || y % meta.stride === meta.cells) { return hide; }
                return [true, p.bbox, "layer " + layer + " · head " + head + " (click to open)"];
            }
            if (meta.kind !== "head-grid") { return hide; }
            const tile = (meta.heads || [])[p.curveNumber];
            const tokens = meta.tokens || [];
            const block = meta.block || 1;
            const weight = (Number(p.z) / (meta.scale || 255)).toFixed(2);
            const name = (meta.tile || "head") + " " + tile;
            if (block === 1) {
                return [true, p.bbox, name + " · " + tokens[y] + " → " + tokens[x] + ": " + weight];
            }
            const last = (meta.seq || tokens.length) - 1;
            const span = function (i) { return (i * block) + "–" + Math.min(last, i * block + block - 1); };
            return [true, p.bbox, name + " · tokens " + span(y) + " → " + span(x) + ": max " + weight];
        }
    }
});

document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) { return; }
    const target = event.target;
    if (!target || (target.id !== "text-input" && target.id !== "text-pair-input")) { return; }
    const button = document.getElementById("analyze-button");
    if (button) {
        event.preventDefault();
        button.click();
    }
});
