/* Attention Explorer client-side code: Ctrl+Enter analyzes; the head grid's hover tooltip. */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    attention: {
        /* The grid sends weights as bytes (0-255); this turns a hover into "head h · query → key: weight". */
        gridHover: function (hoverData, figure) {
            const hide = [false, window.dash_clientside.no_update, ""];
            if (!hoverData || !hoverData.points || !hoverData.points.length || !figure || !figure.layout) {
                return hide;
            }
            const meta = figure.layout.meta || {};
            if (meta.kind !== "head-grid") { return hide; }
            const p = hoverData.points[0];
            const head = (meta.heads || [])[p.curveNumber];
            const tokens = meta.tokens || [];
            const block = meta.block || 1;
            const weight = (Number(p.z) / (meta.scale || 255)).toFixed(2);
            const x = Math.round(p.x), y = Math.round(p.y);
            let text;
            if (block === 1) {
                text = "head " + head + " · " + tokens[y] + " → " + tokens[x] + ": " + weight;
            } else {
                const last = (meta.seq || tokens.length) - 1;
                const span = function (i) { return (i * block) + "–" + Math.min(last, i * block + block - 1); };
                text = "head " + head + " · tokens " + span(y) + " → " + span(x) + ": max " + weight;
            }
            return [true, p.bbox, text];
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
