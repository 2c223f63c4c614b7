/* The page's state in its address (parameter names: callbacks/urlstate.py, a contract), Back and
 * Forward, Copy link and the language switch. */
(function () {
    "use strict";
    const AE = window.AE;

    AE.register({
        /* The page's state in its URL (names: callbacks/urlstate.py). A new analysis gets a new
           history entry, so Back returns to the previous text; any other change replaces it. */
        writeUrl: function (share, layer, head, tab, mode, switches, token, kind, pairFilter, step,
                            compareShare, kindStyle, pairStyle) {
            const views = AE.views();  /* by tab id: its URL name (callbacks/registry.py) */
            const shown = function (style) { return !(style && style.display === "none"); };
            const params = new URLSearchParams();
            if (share) {
                if (share.id) { params.set("id", share.id); }
                else {
                    if (share.text) { params.set("text", share.text); }
                    if (share.pair) { params.set("pair", share.pair); }
                }
                if (share.model) { params.set("model", share.model); }
                if (share.target) { params.set("target", share.target); }
                if (share["continue"]) { params.set("continue", String(share["continue"])); }
            }
            params.set("layer", String(layer));
            params.set("head", String(head));
            params.set("view", (views[tab] && views[tab].name) || "grid");
            params.set("mode", mode || "raw");
            params.set("hide_special", (switches || []).indexOf("hide") >= 0 ? "1" : "0");
            params.set("merge", (switches || []).indexOf("merge") >= 0 ? "1" : "0");
            if ((switches || []).indexOf("first") >= 0) { params.set("drop_first", "1"); }
            if ((switches || []).indexOf("mean") >= 0) { params.set("pool", "mean"); }
            if (token !== null && token !== undefined) { params.set("token", String(token)); }
            if (kind && shown(kindStyle)) { params.set("kind", kind); }
            if (pairFilter && pairFilter !== "all" && shown(pairStyle)) {
                params.set("filter", pairFilter.replace("→", ""));
            }
            if (tab === "tab-generation" && step) { params.set("step", String(step)); }
            if (tab === "tab-compare" && compareShare && compareShare.text) {
                params.set("compare", compareShare.text);
                if (share && compareShare.model !== share.model) { params.set("compare_model", compareShare.model); }
            }
            const lang = new URLSearchParams(window.location.search).get("lang");
            if (lang) { params.set("lang", lang); }
            const url = window.location.pathname + "?" + params.toString();
            if (url === window.location.pathname + window.location.search) { return AE.NO(); }
            const ctx = window.dash_clientside.callback_context;
            const analysed = ctx.triggered.some(function (t) { return t.prop_id === "share-state.data"; });
            if (analysed && share && !share.from_url) { window.history.pushState(null, "", url); }
            else { window.history.replaceState(null, "", url); }
            return AE.NO();
        },

        copyLink: function () { return window.location.href; },

        /* The language switch: the same address (so the same analysis and view) in another language. */
        switchLanguage: function () {
            const ctx = window.dash_clientside.callback_context;
            const pressed = ctx.triggered.length && ctx.triggered[0].value ? ctx.triggered[0].prop_id : "";
            const match = pressed.match(/"lang":"(\w+)"/);
            if (!match) { return AE.NO(); }
            const params = new URLSearchParams(window.location.search);
            params.set("lang", match[1]);
            window.location.assign(window.location.pathname + "?" + params.toString());
            return AE.NO();
        },

        /* At page load: the query string, when there is one, for Analyze to open (callbacks/analyze.py). */
        readUrl: function () {
            return window.location.search.length > 1 ? {search: window.location.search, n: 0} : AE.NO();
        }
    });

    /* Back and Forward: the page shows the state of the address it moved to. */
    window.addEventListener("popstate", function () {
        if (window.dash_clientside.set_props) {
            window.dash_clientside.set_props("url-state", {data: {search: window.location.search, n: Date.now()}});
        }
    });
})();
