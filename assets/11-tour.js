/* The guided tour (components/tour.py), drawn by driver.js (assets/10-driver.js.iife.js, MIT).
 *
 * - The "Tour" button (#tour-button) starts it, always. Arrow keys step, Escape or the close button
 *   ends it; focus goes back where it was.
 * - On a first visit (no flag in localStorage) a small offer (#tour-offer) appears once the page is
 *   drawn: "Start the tour" / "No thanks". Closing the tour or declining sets the flag, so it is never
 *   offered again. Browsers driven by automation (navigator.webdriver) are not offered it, unless the
 *   page asks (data-offer-under-automation).
 * - A step about a tab opens that tab (a click on its link), so its view is there to see. Steps beside the
 *   sidebar put their popover on its right (step.side), never over the Analyze button.
 * - The steps and labels come translated from the page (#tour-data, data-* attributes). The page is
 *   drawn by React after this script runs: clicks are caught on the document, and the offer waits for
 *   the page with a MutationObserver, for a bounded time.
 */
(function () {
    "use strict";
    const DATA_ID = "tour-data";
    const WAIT_MS = 60000;  // give up offering the tour if the page is not drawn by then
    let active = null;      // the running driver.js tour

    function readJSON(element, name, fallback) {
        try {
            const value = JSON.parse(element.getAttribute(name) || "null");
            return value === null ? fallback : value;
        } catch (e) {
            return fallback;
        }
    }

    function settings() {
        const data = document.getElementById(DATA_ID);
        if (!data) { return null; }
        return {
            steps: readJSON(data, "data-steps", []),
            labels: readJSON(data, "data-labels", {}),
            key: data.getAttribute("data-storage-key") || "attention-explorer.tour",
            offerUnderAutomation: data.getAttribute("data-offer-under-automation") === "true",
        };
    }

    /* localStorage may be missing or refuse (private modes, blocked storage): then null / false. */
    function stored(key) {
        try { return window.localStorage.getItem(key); } catch (e) { return null; }
    }
    function remember(key) {
        try { window.localStorage.setItem(key, "done"); return true; } catch (e) { return false; }
    }
    function storageWorks() {
        try {
            const probe = "attention-explorer.probe";
            window.localStorage.setItem(probe, "1");
            window.localStorage.removeItem(probe);
            return true;
        } catch (e) {
            return false;
        }
    }

    /* driver.js puts titles and texts in as HTML: ours are plain text. */
    function escapeHtml(text) {
        const div = document.createElement("div");
        div.textContent = text == null ? "" : String(text);
        return div.innerHTML;
    }

    /* The element a step points at: its selector, or the tab labelled step.tab inside it (the link's
     * list item: React rewrites the link's classes when the tab opens, which would drop driver.js's
     * highlight). A missing element gives null, and driver.js then shows the step in the middle of the
     * page. */
    function tabLink(step) {
        const scope = step.element ? document.querySelector(step.element) : null;
        if (!scope || !step.tab) { return null; }
        const links = scope.querySelectorAll("a.nav-link, button.nav-link, [role='tab']");
        for (const link of links) {
            if (link.textContent.trim() === step.tab) { return link; }
        }
        return null;
    }

    function target(step) {
        const scope = step.element ? document.querySelector(step.element) : null;
        const link = tabLink(step);
        return link ? (link.closest(".nav-item") || link) : scope;
    }

    /* Opens the tab whose link is ``link`` (Dash then draws its view), unless it is open: through Dash's
     * set_props, as a click would, but a click would be taken by driver.js for one beside the popover.
     * The tab's id is its list item's id without "-tab" (components/layout.py _tab). */
    function openTab(step, link) {
        const item = link.closest(".nav-item");
        const tabs = document.querySelector(step.element);
        const setProps = window.dash_clientside && window.dash_clientside.set_props;
        if (!item || !item.id || !tabs || !tabs.id || !setProps || link.classList.contains("active")) { return; }
        setProps(tabs.id, {active_tab: item.id.replace(/-tab$/, "")});
    }

    function hideOffer() {
        const offer = document.getElementById("tour-offer");
        if (offer) { offer.hidden = true; }
    }

    /* driver.js marks the element of a step with aria-haspopup, aria-expanded and aria-controls, and
     * removes them afterwards: the page's own values (a tab's aria-controls, a dropdown's
     * aria-expanded) are kept here and put back. */
    const ARIA = ["aria-haspopup", "aria-expanded", "aria-controls"];
    const savedAria = new Map();

    function saveAria(element) {
        if (element && !savedAria.has(element)) {
            savedAria.set(element, ARIA.map(function (name) { return [name, element.getAttribute(name)]; }));
        }
    }

    function restoreAria(all) {
        savedAria.forEach(function (attributes, element) {
            if (!all && element.classList.contains("driver-active-element")) { return; }
            attributes.forEach(function (pair) {
                if (pair[1] === null) { element.removeAttribute(pair[0]); } else { element.setAttribute(pair[0], pair[1]); }
            });
            savedAria.delete(element);
        });
    }

    function startTour() {
        const config = settings();
        const make = window.driver && window.driver.js && window.driver.js.driver;
        if (!config || !make || !config.steps.length) { return; }
        hideOffer();
        if (active && active.isActive()) { return; }
        const labels = config.labels;
        const progress = String(labels.progress || "{current} / {total}")
            .replace("{current}", "{{current}}").replace("{total}", "{{total}}");
        const returnFocus = document.activeElement;
        // Bootstrap makes the page scroll smoothly; driver.js places its popover right after it scrolls
        // a step's element into view, so that scroll must be instant while the tour runs.
        const root = document.documentElement, scrollBehavior = root.style.scrollBehavior;
        root.style.scrollBehavior = "auto";

        /* However the tour ends (close button, Escape, a click beside it, Done): clean up, remember it. */
        function finish() {
            const tour = active;
            active = null;
            if (tour) { tour.destroy(); }
            restoreAria(true);
            root.removeAttribute("data-ae-tour-step");
            root.style.scrollBehavior = scrollBehavior;
            remember(config.key);
            // Back to where focus was, unless that is gone or hidden (the offer's button): the Tour button.
            const visible = returnFocus && returnFocus !== document.body && document.body.contains(returnFocus)
                && returnFocus.getClientRects().length > 0;
            const back = visible ? returnFocus : document.getElementById("tour-button");
            if (back && back.focus) { back.focus(); }
        }

        active = make({
            showProgress: true,
            progressText: progress,
            nextBtnText: escapeHtml(labels.next || "Next") + " →",
            prevBtnText: "← " + escapeHtml(labels.previous || "Back"),
            doneBtnText: escapeHtml(labels.done || "Done"),
            allowClose: true,
            allowKeyboardControl: true,
            smoothScroll: false,
            animate: !(window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches),
            popoverClass: "ae-tour-popover",
            steps: config.steps.map(function (step) {
                const popover = {title: escapeHtml(step.title), description: escapeHtml(step.text)};
                if (step.side) { popover.side = step.side; popover.align = "start"; }
                return {
                    element: function () {
                        const link = tabLink(step);
                        if (link) { openTab(step, link); }
                        return target(step);
                    },
                    popover: popover,
                };
            }),
            onPopoverRender: function (popover) {
                popover.closeButton.setAttribute("aria-label", labels.close || "Close");
                popover.closeButton.setAttribute("title", labels.close || "Close");
                if (root.lang) { popover.wrapper.setAttribute("lang", root.lang); }
            },
            onHighlightStarted: function (element) { saveAria(element); },
            // The step shown, once driver.js has finished moving to it (it ignores keys and clicks
            // until then): <html data-ae-tour-step="0..">, removed when the tour ends.
            onHighlighted: function (element, step, opts) {
                restoreAria(false);
                root.setAttribute("data-ae-tour-step", String(opts.state.activeIndex));
            },
            onDestroyStarted: finish,
        });
        active.drive();
    }

    /* Why the tour is or is not offered now: "offer", or the reason not to. */
    function offerDecision(config) {
        if (!config || !config.steps.length) { return "no-tour"; }
        if (stored(config.key) === "done") { return "seen"; }
        if (!storageWorks()) { return "no-storage"; }  // could not remember a "no": better not to ask
        if (navigator.webdriver && !config.offerUnderAutomation) { return "automation"; }
        return "offer";
    }

    function pageDrawn() {
        return document.getElementById(DATA_ID) && document.getElementById("tour-offer")
            && document.querySelector("#head-grid .main-svg");
    }

    /* Shows the offer on a first visit. The decision is written on <html data-ae-tour-offer="..."> (shown,
     * seen, automation, ...) for whoever needs to know it was taken (the tests). */
    function offerOnce() {
        let decision = offerDecision(settings());
        if (decision === "offer" && active && active.isActive()) { decision = "touring"; }
        const offer = document.getElementById("tour-offer");
        if (decision === "offer" && offer) {
            offer.hidden = false;
            decision = "shown";
        }
        document.documentElement.setAttribute("data-ae-tour-offer", decision);
    }

    /* Wait (bounded) for the page to be drawn, then offer the tour if this is a first visit. */
    function whenDrawn(callback) {
        if (pageDrawn()) { callback(); return; }
        let done = false;
        const observer = new MutationObserver(function () {
            if (!done && pageDrawn()) { finish(true); }
        });
        const timer = window.setTimeout(function () { finish(Boolean(document.getElementById(DATA_ID))); }, WAIT_MS);
        function finish(ok) {
            done = true;
            observer.disconnect();
            window.clearTimeout(timer);
            if (ok) { callback(); }
        }
        observer.observe(document.documentElement, {childList: true, subtree: true});
    }

    document.addEventListener("click", function (event) {
        const clicked = event.target && event.target.closest ? event.target : null;
        if (!clicked) { return; }
        if (clicked.closest("#tour-button") || clicked.closest("#tour-offer-start")) {
            startTour();
        } else if (clicked.closest("#tour-offer-dismiss")) {
            const config = settings();
            if (config) { remember(config.key); }
            hideOffer();
            const button = document.getElementById("tour-button");
            if (button) { button.focus(); }
        }
    });

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", function () { whenDrawn(offerOnce); });
    } else {
        whenDrawn(offerOnce);
    }
}());
