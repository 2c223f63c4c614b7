"""The interface's languages: English and 简体中文, through gettext catalogs (Babel).

- Every string a person sees goes through ``_`` (or ``ngettext``) when the page or a callback's answer is
  made; strings defined once at import (help texts, examples) are marked with ``N_`` and translated
  where they are shown.
- The language of a request: ``?lang=`` on the page's address (remembered in a cookie, so the page's
  callbacks answer in it too), else that cookie, else the browser's ``Accept-Language``, else English.
  The header's switch reloads the page with another ``lang``; the URL keeps the analysis and the view.
- Messages from ``services`` keep their English template and parameters (``services.errors``):
  ``error_message`` translates them here. Logs stay English.

Catalogs: ``components/locales/<locale>/LC_MESSAGES/messages.po`` (and the compiled ``.mo``, checked in
and checked to be current by the tests); ``components/locales/messages.pot`` is extracted with
``pybabel extract -F babel.cfg -o components/locales/messages.pot .`` (see the README).
"""

from __future__ import annotations

import threading
from pathlib import Path

from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
DEFAULT = "en"
# Language codes used in URLs and cookies -> catalog locale, and the name each language has in itself.
LANGUAGES = {"en": ("en", "English"), "zh": ("zh_Hans", "中文")}
COOKIE = "ae_lang"
_ALIASES = {"zh-cn": "zh", "zh-hans": "zh", "zh-sg": "zh", "zh_hans": "zh", "zh-hant": "zh", "zh-tw": "zh",
            "zh-hk": "zh", "en-us": "en", "en-gb": "en"}

_lock = threading.Lock()
_catalogs: dict[str, NullTranslations] = {}


def N_(message: str) -> str:
    """Marks a string for translation where it is defined; ``translate`` translates it where it is shown."""
    return message


def normalise(code: object) -> str | None:
    """A language code from a URL, cookie or header (``zh``, ``zh-CN``, ``en-GB`` ...) as one of
    ``LANGUAGES``, or None."""
    if not isinstance(code, str) or not code or len(code) > 16:
        return None
    code = code.strip().lower().replace("_", "-")
    code = _ALIASES.get(code, code)
    if code in LANGUAGES:
        return code
    primary = code.split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The first supported language of an ``Accept-Language`` header, by the browser's weights."""
    if not header or len(header) > 500:
        return None
    choices = []
    for index, part in enumerate(header.split(",")[:20]):
        code, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = normalise(code)
        if language and quality > 0:
            choices.append((-quality, index, language))
    return min(choices)[2] if choices else None


def current_language() -> str:
    """The language of the request being answered (English outside a request, e.g. in a notebook)."""
    try:
        from flask import has_request_context, request
    except ImportError:  # pragma: no cover
        return DEFAULT
    if not has_request_context():
        return DEFAULT
    chosen = normalise(request.args.get("lang")) or normalise(request.cookies.get(COOKIE))
    return chosen or from_accept_language(request.headers.get("Accept-Language")) or DEFAULT


def catalog(language: str) -> NullTranslations:
    """The compiled catalog of a language (nothing to translate for English: the source strings)."""
    with _lock:
        found = _catalogs.get(language)
        if found is None:
            locale = LANGUAGES.get(language, (DEFAULT,))[0]
            found = NullTranslations() if language == DEFAULT else Translations.load(str(LOCALES_DIR), [locale], DOMAIN)
            _catalogs[language] = found
        return found


def _(message: str) -> str:
    """``message`` in the language of the current request."""
    return catalog(current_language()).gettext(message) if message else message


def translate(message: str) -> str:
    """A message marked elsewhere (``N_`` where it is defined: a table, an error, a setting) in the
    language of the current request. ``_`` takes string literals only, so what the extractor finds
    never depends on its version (tests/components/test_i18n.py checks every call)."""
    return catalog(current_language()).gettext(message) if message else message


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalog(current_language()).ngettext(singular, plural, n)


def error_message(exc: BaseException) -> str:
    """A services error in the current language: its template translated, then its parameters filled
    in (parameters that are words, e.g. ``what="second sentence"``, are translated too)."""
    template = getattr(exc, "template", None)
    if not template:
        return str(exc)
    params = {name: translate(value) if isinstance(value, str) else value for name, value in getattr(exc, "params", {}).items()}
    try:
        return translate(template).format(**params)
    except (KeyError, IndexError, ValueError):  # a translation that names other fields: the English one
        return str(exc)


def error_title(exc: BaseException) -> str:
    return translate(getattr(exc, "title", "Something went wrong"))


def reset() -> None:
    """Forgets the loaded catalogs (tests, after compiling)."""
    with _lock:
        _catalogs.clear()
