/* The page: its language on the root element (so the browser picks CJK fonts) and in the browser tab's
 * title; Ctrl+Enter in a text box analyzes. */
(function () {
    "use strict";
    const AE = window.AE;

    const setLanguage = function () {
        const el = document.getElementById("ae-i18n");
        if (el && el.getAttribute("data-lang")) {
            document.documentElement.lang = el.getAttribute("data-lang");
            if (AE.words().page_title) { document.title = AE.words().page_title; }  /* the browser tab's title too */
            return;
        }
        window.setTimeout(setLanguage, 100);
    };
    setLanguage();

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
})();
