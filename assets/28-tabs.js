/* The view tabs for screen readers: dbc.Tabs renders every tab's link with the same id
 * ("<prefix>-tab-null": it gives react-bootstrap no eventKey), pointing at a panel that does not exist,
 * and none marked selected. Each link gets the id its panel names (aria-labelledby), aria-controls
 * pointing at that panel, aria-selected, and the one focusable tab (tabindex 0, arrow keys move between
 * tabs). A tab's id is its list item's id without "-tab" (components/layout.py _tab). */
(function () {
    "use strict";

    function set(element, name, value) {
        if (element.getAttribute(name) !== value) { element.setAttribute(name, value); }
    }

    function fix(list) {
        list.querySelectorAll(".nav-item").forEach(function (item) {
            const link = item.querySelector("[role='tab']");
            if (!link || !item.id) { return; }
            const tab = item.id.replace(/-tab$/, "");
            const pane = document.querySelector("[role='tabpanel'][id$='-tabpane-" + CSS.escape(tab) + "']");
            set(link, "id", (pane && pane.getAttribute("aria-labelledby")) || item.id + "-link");
            if (pane) { set(link, "aria-controls", pane.id); }
            const active = link.classList.contains("active");
            set(link, "aria-selected", active ? "true" : "false");
            set(link, "tabindex", active ? "0" : "-1");
        });
    }

    const watched = new WeakSet();
    let queued = false;

    /* Finds the tab lists (the page is drawn by React after this script runs), fixes them, and watches
       each for the changes React makes (a tab opened, a tab shown or hidden). */
    function scan() {
        queued = false;
        document.querySelectorAll(".nav-tabs[role='tablist']").forEach(function (list) {
            fix(list);
            if (!watched.has(list)) {
                watched.add(list);
                new MutationObserver(function () { fix(list); }).observe(list, {
                    subtree: true, childList: true, attributes: true,
                    attributeFilter: ["class", "id", "aria-controls", "aria-selected", "tabindex"]});
            }
        });
    }

    new MutationObserver(function () {
        if (!queued) { queued = true; window.requestAnimationFrame(scan); }
    }).observe(document.documentElement, {childList: true, subtree: true});
    scan();
})();
