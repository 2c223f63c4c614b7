"""``extract_attention``: text in, every layer's and head's attention out, cached.

This is the project's Python API for notebooks too::

    from services import extract_attention
    r = extract_attention("The cat sat on the mat because it was tired.")
    r.tokens            # ['[CLS]', 'the', 'cat', ...]
    r.attentions.shape  # (layers, heads, seq, seq), float16, rows = queries, each summing to 1
    r.head(5, 3)        # one head as float32

Encoder-decoder models (BART, T5, Marian ...) take an optional ``target``; without one they write it
greedily (at most ``ATTN_MAX_NEW_TOKENS`` tokens)::

    r = extract_attention("The cat sat on the mat.", model_id="path/to/marian", target="Le chat ...")
    r.tokens, r.attentions            # the source and the encoder's self-attention, as above
    r.target_tokens                   # the decoder's input ids as tokens, from the decoder start token
    r.decoder_attentions.shape        # (layers, heads, tgt, tgt), causal
    r.cross_attentions.shape          # (layers, heads, tgt, src): target rows, source columns

Decoder-only models (GPT-2 family) continue a text by ``n`` tokens::

    g = generate_steps("The cat sat on the", 5, model_id="gpt2")
    g.tokens[g.prompt_length:]        # the tokens it wrote
    g.step_attention(1)               # (layers, heads, seq): generated token 1 over the prompt and itself
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from .config import get_settings
from .errors import N_, AttentionExplorerError, InputError, RateLimitedError
from .model.forward import run_local
from .model.inputs import check_steps, checked_inputs
from .model.loading import fingerprint
from .result import AttentionResult
from .store import cache, share
from .store.memory import memory
from .store.recipes import Recipe

log = logging.getLogger(__name__)


_KEY = re.compile(r"^[a-z0-9-]{1,16}:[0-9a-f]{64}$")


def cache_key(model_id: str, text: str, text_pair: str | None, target: str | None = None, *,
              steps: int | None = None, max_new_tokens: int | None = None) -> str:
    """The result's key: model (id and files), text, pair, target, the configured token limit and the
    generation settings (the bound on written tokens, ``max_new_tokens``, the configured one by default;
    and ``steps`` for a decoder-only continuation)."""
    settings = get_settings()
    bound = settings.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
    generation = {"target": target, "max_new_tokens": bound, "steps": steps}
    return cache.make_key(model_id, fingerprint(model_id), text, text_pair, settings.max_tokens, generation)


def is_result_key(value: object) -> bool:
    """Whether ``value`` has the shape of a key ``cache_key`` makes (a browser may send anything)."""
    return isinstance(value, str) and len(value) <= 90 and _KEY.match(value) is not None


def _recipe_key(key: str) -> str:
    return "recipe-" + key


class Analysis(tuple):
    """What ``analyse`` and ``result_by_key`` return: the pair ``(key, result)`` (unpack it as such), and
    ``recipe``, the checked input that computes the result again (``services.store.recipes``; None when
    a cached result was asked for by key alone)."""

    recipe: Recipe | None

    def __new__(cls, key: str, result: AttentionResult, recipe: Recipe | None) -> "Analysis":
        made = super().__new__(cls, (key, result))
        made.recipe = recipe
        return made

    @property
    def key(self) -> str:
        return self[0]

    @property
    def result(self) -> AttentionResult:
        return self[1]


def _cached_result(key: str) -> AttentionResult | None:
    """The cached result under ``key``; anything else found there (e.g. text) is a miss."""
    hit = cache.lookup(key)
    return hit if isinstance(hit, AttentionResult) else None


def extract_attention(text: str, model_id: str | None = None, text_pair: str | None = None,
                      target: str | None = None) -> AttentionResult:
    """The attention of ``text`` (and the optional second sentence ``text_pair``) under ``model_id``.

    ``model_id`` defaults to the configured default model (the bundled all-MiniLM-L6-v2). For an
    encoder-decoder model (BART, T5, Marian ...), ``target`` is what its decoder reads; without one
    (None or blank) the model writes it greedily, at most ``ATTN_MAX_NEW_TOKENS`` tokens. The result's
    ``tokens`` and ``attentions`` are the encoder's; ``target_tokens``, ``decoder_attentions`` and
    ``cross_attentions`` the decoder's (None for other models, which refuse a target).

    Raises ``InputError`` for empty or over-long text, ``ModelNotAllowedError`` for a model the server
    does not offer and ``ModelLoadError`` for one that cannot be loaded; each message is for people.
    A cached result is returned without running the model.
    """
    return analyse(text, model_id, text_pair, target)[1]


def generate_steps(text: str, n: int, model_id: str | None = None) -> AttentionResult:
    """A decoder-only model (GPT-2 family) continues ``text`` greedily by ``n`` tokens (1 to
    ``ATTN_MAX_NEW_TOKENS``; fewer when it writes its end token), and the attention of every step.

    The result is an ``AttentionResult`` over prompt + continuation (causal): ``prompt_length``,
    ``generated_mask``, ``generated_text``, and per step ``t`` (1 to ``generation_steps``)
    ``step_attention(t)``, ``(layers, heads, seq)``: generated token ``t`` over the prompt, the tokens
    written before it and itself (``producing=True``: the row of the token whose prediction it was);
    ``step_attentions()`` stacks every step, ``(steps, layers, heads, seq)`` float16. Cached like any
    analysis. Raises ``InputError`` for a model that cannot continue a text, saying why.
    """
    return analyse(text, model_id, steps=n)[1]


def cached_analysis(text: str, model_id: str | None = None, text_pair: str | None = None, target: str | None = None, *,
                    steps: int | None = None) -> "Analysis | None":
    """The ``Analysis`` ``analyse`` would give at once, from a cache (this process's memory or the shared
    cache), without running the model; None when the text must be computed (or the inputs are refused)."""
    settings = get_settings()
    try:
        model_id, text, text_pair, target = checked_inputs(model_id, text, text_pair, target, settings.char_limit)
        if steps is not None:
            steps = check_steps(steps, settings.max_new_tokens)
    except AttentionExplorerError:
        return None
    key = cache_key(model_id, text, text_pair, target, steps=steps, max_new_tokens=settings.max_new_tokens)
    hit = _cached_result(key)
    return Analysis(key, hit, Recipe(model_id, text, text_pair, target, steps)) if hit is not None else None


def analyse(text: str, model_id: str | None = None, text_pair: str | None = None, target: str | None = None, *,
            steps: int | None = None,
            before_compute: Callable[[], None] | None = None) -> Analysis:
    """``extract_attention`` that also returns the result's cache key, the handle views fetch it by, and
    its recipe (``Analysis``: unpacks as ``key, result``).

    ``steps``: a decoder-only model continues the text by that many tokens (``generate_steps``).

    Beside the result, the cache keeps a small recipe (text, pair, target, model, generation settings)
    under its own key, so a result evicted for room is computed again from it (``result_by_key``); the
    page keeps the same recipe signed, for when the shared cache cannot give either.
    ``before_compute`` is called once before the model runs for a text that is not cached (e.g. a
    rate limit that raises); a cached text never calls it.
    """
    settings = get_settings()
    model_id, text, text_pair, target = checked_inputs(model_id, text, text_pair, target, settings.char_limit)
    max_new_tokens = settings.max_new_tokens
    if steps is not None:
        steps = check_steps(steps, max_new_tokens)
        if text_pair is not None or target is not None:
            raise InputError(N_("Continuing a text takes one text: leave the second sentence and the target empty."))
    key = cache_key(model_id, text, text_pair, target, steps=steps, max_new_tokens=max_new_tokens)
    recipe = Recipe(model_id, text, text_pair, target, steps)
    hit = _cached_result(key)
    if hit is not None:
        return Analysis(key, hit, recipe)

    ran = []  # whether this call's own compute ran (it led the flight), or it waited on another's

    def compute() -> AttentionResult:
        ran.append(True)
        again = _cached_result(key)
        if again is not None:
            return again
        if before_compute is not None:
            before_compute()
        result = run_extraction(text, model_id, text_pair, target, max_new_tokens=max_new_tokens, steps=steps)
        kept = json.dumps({"text": text, "text_pair": text_pair, "model_id": model_id, "target": target,
                           "max_new_tokens": max_new_tokens, "steps": steps}, ensure_ascii=False)
        cache.store(_recipe_key(key), kept, len(kept) * 4)
        cache.store(key, result, result.nbytes)
        return result

    try:
        return Analysis(key, memory().flight.run(key, compute), recipe)
    except RateLimitedError:
        if ran:
            raise
        # the person who led this text's analysis was over their limit, not this one: their own turn,
        # checked against their own limit
        return Analysis(key, compute(), recipe)


def result_by_key(key: object, recipe: Recipe | None = None, *,
                  before_compute: Callable[[], None] | None = None) -> Analysis | None:
    """The result a key names, and its key now: from the cache; else computed again from ``recipe`` (the
    one the page's handle carries, its signature already checked: ``services.store.recipes.unseal``), or
    from the recipe the server kept when the result itself was evicted. The key changes when the
    model's files (or ``ATTN_MAX_NEW_TOKENS``) did. ``before_compute`` is called, as ``analyse`` calls it,
    only when the model runs: a recomputation costs what an analysis of a new text costs.

    ``None`` when neither recipe is left (or ``key`` is not a key): the person has to analyse again.
    Never raises for a bad key or recipe; a rate limit (``RateLimitedError``) is raised as ``analyse``
    raises it. Never re-validates text the browser sent: the recipe's text was signed by this server.
    """
    if not is_result_key(key):
        return None
    hit = _cached_result(key)
    if hit is not None:
        return Analysis(key, hit, recipe)
    for find in (lambda: _page_recipe(recipe), lambda: _kept_recipe(key)):  # the page's first: no cache read
        source = find()
        if source is None:
            continue
        try:
            # With today's settings: a changed ATTN_MAX_NEW_TOKENS (like changed model files) changes the key.
            return analyse(source.text, source.model_id, source.text_pair, source.target, steps=source.steps,
                           before_compute=before_compute)
        except RateLimitedError:
            raise
        except AttentionExplorerError as exc:  # e.g. the model is no longer offered
            log.info("result %s could not be computed again: %s", key, exc)
            return None
    return None


def _page_recipe(recipe: Recipe | None) -> Recipe | None:
    """The page's recipe with its text: a long text's short id resolved through the shared cache (None
    when the cache no longer has it)."""
    if recipe is None or recipe.share_id is None:
        return recipe
    entry = share.load_text(recipe.share_id)
    if entry is None:
        return None
    return Recipe(recipe.model_id, entry["text"], entry.get("pair"), recipe.target, recipe.steps)


def _kept_recipe(key: str) -> Recipe | None:
    """The recipe the server kept in the shared cache beside the result (None when it has none)."""
    raw = cache.lookup(_recipe_key(key))
    try:
        kept = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        kept = None
    if not isinstance(kept, dict) or not isinstance(kept.get("text"), str):
        return None
    pair, target, steps = kept.get("text_pair"), kept.get("target"), kept.get("steps")
    return Recipe(str(kept.get("model_id") or ""), kept["text"], pair if isinstance(pair, str) else None,
                  target if isinstance(target, str) else None,
                  steps if isinstance(steps, int) and not isinstance(steps, bool) else None)


def run_extraction(text: str, model_id: str, text_pair: str | None, target: str | None = None, *,
                   max_new_tokens: int | None = None, steps: int | None = None) -> AttentionResult:
    """Tokenize and run the model (no cache): in a Celery worker when ``celery_broker_url`` is set
    (see ``services.tasks``), else in this process."""
    if get_settings().celery_broker_url:
        from .store.tasks import run_in_worker

        return run_in_worker(text, model_id, text_pair, target=target, max_new_tokens=max_new_tokens, steps=steps)
    return run_local(text, model_id, text_pair, target, max_new_tokens, steps)


def induction_scores(model_id: str):
    """``(layers, heads)`` float64: each head's induction score on the model's repeated random-token probe
    (``services.model.probe``, scored by ``services.analyses.heads.induction_scores``), from one forward
    pass, remembered per model and version of its files. None for an encoder-decoder model, or when the
    probe cannot run (logged): the atlas then shows no induction score."""
    from .analyses.heads import induction_scores as score
    from .model.probe import PROBE_HALF, PROBE_SEED, run_probe

    try:
        version = fingerprint(model_id)
    except AttentionExplorerError:
        return None

    def compute():
        try:
            ids, maps = run_probe(model_id, PROBE_HALF, PROBE_SEED)
        except (ValueError, AttentionExplorerError) as exc:
            log.info("no induction probe for %s: %s", model_id, exc)
            return ("none",)
        return score(maps, ids)

    key = ("induction-probe", model_id, version, PROBE_HALF, PROBE_SEED)
    found = memory().derived.get_or_compute(key, lambda: memory().flight.run(key, compute))
    return None if isinstance(found, tuple) else found
