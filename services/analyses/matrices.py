"""Transforms of attention matrices for the views: float16 to float32, sub-words merged, special
tokens hidden, rollout. Pure numpy: no model, no Dash.

Attention arrays have rows = queries and columns = keys in the last two axes. Inputs may be float16
(as ``AttentionResult.attentions`` stores them); every computation runs in float32::

    groups, words = tokens.word_groups(r.tokens, r.word_ids, r.segment_ids, r.special_mask)
    by_word = merge_subwords(r.attentions[layer], groups)          # (heads, words, words)
    word_special = r.special_mask[[g[0] for g in groups]]
    content, kept = hide_special(by_word, word_special)            # special words removed
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..result import as_float32, looks_causal

# --- words ------------------------------------------------------------------------------------

def _membership(groups: Sequence[Sequence[int]], seq: int) -> np.ndarray:
    """A ``(words, seq)`` 0/1 matrix: row w marks the tokens of word w. Groups must partition the tokens."""
    flat = [i for group in groups for i in group]
    if any(not group for group in groups) or sorted(flat) != list(range(seq)):
        raise ValueError(f"groups must split token indices 0..{seq - 1} into non-empty words, each token once")
    member = np.zeros((len(groups), seq), dtype=np.float32)
    for word, group in enumerate(groups):
        member[word, list(group)] = 1.0
    return member


def merge_subwords(att: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Attention between words instead of tokens: ``(..., seq, seq) -> (..., words, words)`` float32.

    Attention *to* a word is the sum over its pieces (columns); attention *from* a word is the mean
    over its pieces (rows), so each row still sums to 1. ``groups`` comes from ``word_groups``.
    """
    return merge_rectangular(att, groups, groups)


def merge_rectangular(att: np.ndarray, row_groups: Sequence[Sequence[int]] | None,
                      col_groups: Sequence[Sequence[int]] | None) -> np.ndarray:
    """``merge_subwords`` for attention whose rows and columns are different tokens (cross-attention:
    target rows, source columns): rows are averaged over each row group's pieces, columns summed over
    each column group's pieces; either side may stay as it is (``None``). Rows still sum to 1."""
    att = as_float32(att)
    if col_groups is not None:
        att = att @ _membership(col_groups, att.shape[-1]).T
    if row_groups is not None:
        member = _membership(row_groups, att.shape[-2])
        att = (member / member.sum(axis=1, keepdims=True)) @ att
    return att


def hide_rectangular(att: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Keeps the rows ``rows`` and the columns ``cols`` of ``(..., queries, keys)`` attention and
    renormalises each row to sum to 1 (a row left with no mass spreads evenly over the kept keys)."""
    att = as_float32(att)
    sub = att[..., np.asarray(rows)[:, None], np.asarray(cols)[None, :]]
    mass = sub.sum(axis=-1, keepdims=True)
    even = np.full_like(sub, 1.0 / max(len(cols), 1))
    return np.where(mass > 0, sub / np.where(mass > 0, mass, 1.0), even).astype(np.float32)


# --- special tokens ------------------------------------------------------------------------------

def _uniform_rows(seq: int, causal: bool) -> np.ndarray:
    """Rows spreading evenly over the keys each query can see (all, or those up to itself)."""
    visible = np.tril(np.ones((seq, seq), dtype=np.float32)) if causal else np.ones((seq, seq), np.float32)
    return visible / visible.sum(axis=1, keepdims=True)


def hide_special(att: np.ndarray, special_mask: Sequence[bool] | np.ndarray,
                 causal: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Removes the rows and columns of special tokens and renormalises each remaining row to sum to 1.

    Returns the float32 attention ``(..., kept, kept)`` and the kept token indices. A row left with no
    mass at all (float16 can round small weights to 0) becomes uniform over the keys it can see: all
    of them, or for causal attention (zero upper triangle) those at or before it. ``causal`` says
    which (``AttentionResult.is_causal``); ``None`` reads it from the matrix (``looks_causal``).
    """
    att = as_float32(att)
    special = np.asarray(special_mask, dtype=bool)
    if special.shape != (att.shape[-1],) or att.shape[-1] != att.shape[-2]:
        raise ValueError("hide_special needs (..., seq, seq) attention and a (seq,) special mask")
    kept = np.flatnonzero(~special)
    sub = att[..., kept[:, None], kept]
    mass = sub.sum(axis=-1, keepdims=True)
    empty = ~(mass > 0)
    if not empty.any():
        return sub / mass, kept
    fallback = _uniform_rows(len(kept), looks_causal(att) if causal is None else causal)
    return np.where(empty, fallback, sub / np.where(empty, 1.0, mass)).astype(np.float32), kept


# --- across layers -------------------------------------------------------------------------------

def _check_model_attention(attentions: np.ndarray, what: str) -> None:
    if attentions.ndim != 4 or attentions.shape[-1] != attentions.shape[-2]:
        raise ValueError(f"{what} needs (layers, heads, seq, seq) attention, got shape {attentions.shape}")


def rollout(attentions: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): how much each token draws on each input token.

    Per layer the heads are averaged and the residual connection added, ``A' = residual * I +
    (1 - residual) * A``, rows renormalised; then ``R_0 = A'_0`` and ``R_l = A'_l @ R_{l-1}``.
    Returns ``(layers, seq, seq)`` float32 where ``R_l`` is the rollout through layer ``l``. Causal
    input stays lower triangular.
    """
    attentions = np.asarray(attentions)
    _check_model_attention(attentions, "rollout")
    if not 0.0 <= residual <= 1.0:
        raise ValueError("residual must be between 0 and 1")
    seq = attentions.shape[-1]
    mixed = residual * np.eye(seq, dtype=np.float32) + (1.0 - residual) * as_float32(attentions).mean(axis=1)
    sums = mixed.sum(axis=-1, keepdims=True)
    mixed = np.divide(mixed, sums, out=np.zeros_like(mixed), where=sums > 0)
    result = np.empty_like(mixed)
    result[0] = mixed[0]
    for layer in range(1, len(mixed)):
        result[layer] = mixed[layer] @ result[layer - 1]
    return result


def top_k(weights: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` largest weights with their indices, highest first, ties: lower index first."""
    order = np.lexsort((np.arange(len(weights)), -weights))[:k]
    return [(int(i), float(weights[i])) for i in order]


def attended_by(attentions: np.ndarray, token: int, k: int = 3) -> list[list[tuple[int, float]]]:
    """For every layer, the ``k`` query tokens that attend to key ``token`` the most, heads averaged.

    The reverse of ``analysis.top_attended``: one list per layer of ``(query index, weight)``,
    highest weight first (ties: earlier token first).
    """
    attentions = np.asarray(attentions)
    _check_model_attention(attentions, "attended_by")
    seq = attentions.shape[-1]
    if not 0 <= token < seq:
        raise IndexError(f"token {token} is outside 0..{seq - 1}")
    k = max(1, min(k, seq))
    columns = as_float32(attentions[..., token]).mean(axis=1)  # (layers, queries)
    return [top_k(column, k) for column in columns]


# --- weighted by value norm (Kobayashi et al., 2020) ---------------------------------------------

def weighted_by_value_norm(att: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Attention weighted by what it carries: ``α_ij ‖f(x_j)‖`` (Kobayashi et al., EMNLP 2020).

    ``att`` is ``(..., queries, keys)`` (square for self-attention; target x source for
    cross-attention), ``norms`` the value norms ``(..., keys)`` of the same heads
    (``AttentionResult.value_norms``, one per key token). Returns float32 ``(weighted,
    renormalised)``: ``weighted[..., i, j] = att[..., i, j] * norms[..., j]`` (for the hover), and the
    same with each row divided by its sum so it adds up to 1 (for display). A row with nothing to carry
    (sum 0, e.g. a head whose value vectors are all zero) stays all zeros.
    """
    att = as_float32(att)
    norms = np.asarray(norms, dtype=np.float32)
    if att.ndim < 2 or norms.shape[-1] != att.shape[-1]:
        raise ValueError(f"weighted_by_value_norm needs (..., queries, keys) attention and (..., keys) norms, "
                         f"got {att.shape} and {norms.shape}")
    weighted = att * norms[..., None, :]
    sums = weighted.sum(axis=-1, keepdims=True)
    renormalised = np.divide(weighted, sums, out=np.zeros_like(weighted), where=sums > 0)
    return weighted, renormalised
