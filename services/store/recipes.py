"""What computes an analysis again: its recipe, and the signed form a page keeps of it.

A ``Recipe`` is the input of one analysis as the services checked it: the model, the text, the second
sentence, the target given to an encoder-decoder model and the tokens a decoder-only model was asked to
write. An analysis is cached under a hash of the same things (``services.extraction.cache_key``), so
any web process can compute the result again from its recipe when the shared cache cannot give it (Redis
down, a full or read-only disk, a refused folder, an entry evicted for room).

The page keeps it **sealed** (``seal`` / ``unseal``): compact JSON, signed with HMAC-SHA256 under the
server's secret (``services.store.secret``) by itsdangerous, compressed when that helps, in URL-safe
base64. The browser holds the person's own text (it is on their page anyway) but cannot change it, nor
make a recipe for someone else's text, without the signature failing; what arrives is checked like any
text (``services.model.inputs.checked_inputs``: the configured length limit), so a handle never makes
the server do more than one ordinary analysis.

A long text (one whose link would use a short id, ``services.store.share.needs_short_id``) is sealed by
its short id when the shared cache can keep it (the id is a hash of the text, so it names that text and
no other), which keeps the handle small; when the cache cannot keep it, the text itself is sealed.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from ..config import Settings
from .secret import server_secret

VERSION = 1
SALT = "attention-explorer.recipe"
# Longest sealed recipe accepted from a page: far above a sealed text at the configured limit (the bytes of
# 4 x max_chars characters, base64), and bounded by the request size limit anyway.
_OVERHEAD = 512


@dataclass(frozen=True)
class Recipe:
    """One analysis's input: ``text`` or, for a long text kept by the shared cache, its ``share_id``."""

    model_id: str
    text: str | None = None
    text_pair: str | None = None
    target: str | None = None
    steps: int | None = None
    share_id: str | None = None

    def by_id(self, share_id: str) -> "Recipe":
        """This recipe naming its text (and pair) by a short id instead."""
        return Recipe(self.model_id, None, None, self.target, self.steps, share_id)


def _serializer(settings: Settings | None = None) -> URLSafeSerializer:
    # compact JSON in, so the signed payload stays small
    return URLSafeSerializer(server_secret(settings), salt=SALT,
                             serializer_kwargs={"separators": (",", ":"), "ensure_ascii": False})


def seal(recipe: Recipe, settings: Settings | None = None) -> str:
    """The signed, URL-safe form of ``recipe`` that a page keeps."""
    fields = [VERSION, recipe.model_id, recipe.text, recipe.text_pair, recipe.target, recipe.steps, recipe.share_id]
    while fields[-1] is None:
        fields.pop()
    return _serializer(settings).dumps(fields)


def max_sealed_length(max_chars: int) -> int:
    """The longest sealed recipe a page may send for texts of at most ``max_chars`` characters (text,
    pair and target: 4 UTF-8 bytes each at most, base64 makes 4 characters of 3 bytes)."""
    return _OVERHEAD + (3 * max_chars * 4 * 4) // 3 + 4


def unseal(token: object, settings: Settings | None = None) -> Recipe | None:
    """The recipe ``token`` holds when this server signed it; None for anything else (never raises)."""
    from ..config import get_settings

    settings = settings or get_settings()
    if not isinstance(token, str) or not token or len(token) > max_sealed_length(settings.char_limit):
        return None
    try:
        fields = _serializer(settings).loads(token)
    except (BadSignature, ValueError, zlib.error, RecursionError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(fields, list) or not 2 <= len(fields) <= 7 or fields[0] != VERSION:
        return None
    model, text, pair, target, steps, share_id = (fields[1:] + [None] * 6)[:6]
    if not isinstance(model, str) or not all(v is None or isinstance(v, str) for v in (text, pair, target, share_id)):
        return None
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
        return None
    if (text is None) == (share_id is None):
        return None  # exactly one of the text and its id
    return Recipe(model, text, pair, target, steps, share_id)


def for_page(recipe: Recipe, settings: Settings | None = None) -> str:
    """``recipe`` sealed for a page: a long text by its short id when the shared cache keeps it (see the
    module's docstring), else the text itself."""
    from ..errors import AttentionExplorerError
    from . import share

    if recipe.text is not None and share.needs_short_id(recipe.text, recipe.text_pair):
        try:
            recipe = recipe.by_id(share.store_text(recipe.text, recipe.text_pair, recipe.model_id))
        except AttentionExplorerError:  # no shared cache right now: the page keeps the text itself
            pass
    return seal(recipe, settings)
