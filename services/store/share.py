"""Short ids for texts too long to share in a URL (issue 11).

A link holds the text itself (``?text=...``) while it is short; a longer one (``needs_short_id``) is
kept on the server instead and the link holds ``?id=<12 characters>``::

    short_id = store_text(text, pair, model)   # "q3X_9aB-c0dE"
    load_text(short_id)                        # {"text": ..., "pair": ..., "model": ...}, or None once expired

The entry lives in the shared cache (``services.cache``: the file-system cache or Redis, never a
pickle: a JSON string in the safe codec), with the cache's lifetime (``ATTN_CACHE_TIMEOUT``), so it
lasts as long as the analysis it names and is gone when that is. ``load_text`` returns None for an id
that has expired (or was never made here); the page then says so (``EXPIRED_MESSAGE``).

Ids are the first 72 bits of a SHA-256 of the entry, in URL-safe base64: the same text, pair and
model give the same id (no duplicates), and an id cannot be guessed from another. An id is
validated strictly (``is_share_id``) before the cache is asked. An entry already held under an id
is never replaced by a different one: on such a collision the next id is taken (a counter in the
hashed entry), and ``load_text`` checks that an entry hashes to its id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import quote

from ..config import get_settings
from ..errors import N_, AttentionExplorerError
from ..validation import validate_text
from . import cache

ID_LENGTH = 12
_ID = re.compile(rf"^[A-Za-z0-9_-]{{{ID_LENGTH}}}$")
URL_TEXT_LIMIT = 1500  # characters of URL-encoded text (and pair) beyond which a link uses an id
ENTRY_VERSION = 1
_ATTEMPTS = 4
EXPIRED_MESSAGE = N_("This link's text is no longer kept on the server (links to long texts last as long as "
                      "the analyses in the cache). Paste the text again to analyse it.")
UNREADABLE_MESSAGE = N_("This link's id is not one this server makes; check that the link was copied whole.")


class ShareError(AttentionExplorerError):
    """The text could not be kept on the server (no shared cache, or the cache failed)."""

    title = "Could not make a short link"


def needs_short_id(text: str, pair: str | None = None, limit: int = URL_TEXT_LIMIT) -> bool:
    """Whether ``text`` (and ``pair``) are too long for a comfortable URL: over ``limit`` characters once
    URL-encoded (a Chinese character takes 9)."""
    size = len(quote(text or "", safe="")) + len(quote(pair or "", safe=""))
    return size > limit


def is_share_id(value: object) -> bool:
    """Whether ``value`` has the form of an id ``store_text`` makes (anything from a URL may arrive)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _entry(text: str, pair: str | None, model: str | None, attempt: int) -> str:
    return json.dumps({"v": ENTRY_VERSION, "text": text, "pair": pair, "model": model, "n": attempt},
                      ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def _id_of(entry: str) -> str:
    digest = hashlib.sha256(entry.encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode("ascii")  # 9 bytes: 12 characters, no padding


def _key(short_id: str) -> str:
    return cache.make_key("share", short_id)


def store_text(text: str, pair: str | None = None, model: str | None = None) -> str:
    """Keeps ``text``, ``pair`` and ``model`` in the shared cache; returns the short id that names them.

    Raises ``InputError`` for a text the app would not analyse (empty, over ``ATTN_MAX_CHARS``) and
    ``ShareError`` when nothing can be kept (a null cache, or the cache is down)."""
    settings = get_settings()
    text = validate_text(text, settings.char_limit, what=N_("text"))
    pair = validate_text(pair, settings.char_limit, what=N_("second sentence"), required=False)
    if model is not None and not isinstance(model, str):
        raise TypeError("model must be a model id (text) or None")
    if settings.cache_type == "null":
        raise ShareError(N_("This server keeps no cache, so it cannot keep a long text for a link. "
                            "Share a shorter text, or the text itself."))
    for attempt in range(_ATTEMPTS):
        entry = _entry(text, pair, model, attempt)
        short_id = _id_of(entry)
        held = cache.lookup(_key(short_id))
        if held == entry:
            return short_id  # kept already (the same text shared twice)
        if held is not None:
            continue  # another entry has this id: never replace it
        if not cache.store(_key(short_id), entry, 4 * len(entry)) or cache.lookup(_key(short_id)) != entry:
            raise ShareError(N_("The server could not keep the text just now. Try again in a moment, or share "
                                "a shorter text."))
        return short_id
    raise ShareError(N_("The server could not make a short link for this text. Try again."))  # pragma: no cover


def load_text(short_id: object) -> dict | None:
    """``{"text", "pair", "model"}`` kept under ``short_id``, or None: for an id that has expired, was never
    made here, or is not an id at all (see ``is_share_id`` to tell the last apart)."""
    if not is_share_id(short_id):
        return None
    held = cache.lookup(_key(short_id))
    if not isinstance(held, str) or len(held) > 256 + 24 * get_settings().char_limit:
        return None
    try:
        entry = json.loads(held)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("v") != ENTRY_VERSION or _id_of(held) != short_id:
        return None  # not what store_text wrote under this id
    text, pair, model = entry.get("text"), entry.get("pair"), entry.get("model")
    if not isinstance(text, str) or not (pair is None or isinstance(pair, str)) \
            or not (model is None or isinstance(model, str)):
        return None
    return {"text": text, "pair": pair, "model": model}
