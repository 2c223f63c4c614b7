"""Pure-numpy analyses of attention matrices. No model, no Dash.

Every function takes attention with rows = queries and columns = keys, in the last two axes, so it
works on one head ``(seq, seq)``, one layer ``(heads, seq, seq)`` or a whole model
``(layers, heads, seq, seq)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..result import as_float32

_EPS = 1e-12


def _as_float(att: np.ndarray) -> np.ndarray:
    att = np.asarray(att)
    return att if att.dtype == np.float64 else as_float32(att)


def head_average(att: np.ndarray) -> np.ndarray:
    """The mean over heads: ``(heads, seq, seq) -> (seq, seq)``, or ``(layers, heads, s, s) -> (layers, s, s)``."""
    att = _as_float(att)
    if att.ndim < 3:
        raise ValueError("head_average needs a heads axis: (heads, seq, seq) or (layers, heads, seq, seq)")
    return att.mean(axis=-3)


def distance_matrix(seq: int) -> np.ndarray:
    """``|query - key|`` for every cell."""
    idx = np.arange(seq)
    return np.abs(idx[:, None] - idx[None, :])


def local_ratio(att: np.ndarray, window: int = 3) -> np.ndarray:
    """Share of attention mass within ``window`` tokens of the query (``|q - k| <= window``), averaged over queries."""
    if window < 0:
        raise ValueError("window must be 0 or more")
    att = _as_float(att)
    mask = distance_matrix(att.shape[-1]) <= window
    return (att * mask).sum(axis=-1).mean(axis=-1)


def mean_distance(att: np.ndarray) -> np.ndarray:
    """The attention-weighted mean of ``|q - k|``, averaged over queries."""
    att = _as_float(att)
    return (att * distance_matrix(att.shape[-1])).sum(axis=-1).mean(axis=-1)


def entropy(att: np.ndarray, normalise: bool = False, causal: bool = False) -> np.ndarray:
    """Mean over queries of each row's Shannon entropy (nats).

    With ``normalise``, each row's entropy is divided by the log of the number of keys it can see
    (all of them; for ``causal`` models the query and those before it), so 0 = all mass on one token
    and 1 = spread evenly. Rows that can see one key only count as 0.
    """
    att = _as_float(att)
    seq = att.shape[-1]
    p = np.clip(att, 0.0, None)
    row_h = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1)
    if normalise:
        visible = np.arange(1, seq + 1) if causal else np.full(seq, seq)
        denom = np.log(visible.astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            row_h = np.where(denom > 0, row_h / np.where(denom > 0, denom, 1.0), 0.0)
    return row_h.mean(axis=-1)


def top_attended(attentions: np.ndarray, token: int, k: int = 3) -> list[list[tuple[int, float]]]:
    """For every layer, the ``k`` keys that ``token`` (a query index) attends to most, heads averaged.

    ``attentions`` is ``(layers, heads, seq, seq)``. Returns one list per layer of
    ``(key index, weight)``, highest weight first (ties: earlier token first).
    """
    att = _as_float(attentions)
    if att.ndim != 4:
        raise ValueError("top_attended needs (layers, heads, seq, seq)")
    seq = att.shape[-1]
    if not 0 <= token < seq:
        raise IndexError(f"token {token} is outside 0..{seq - 1}")
    k = max(1, min(k, seq))
    rows = att[:, :, token, :].mean(axis=1)  # (layers, seq)
    result = []
    for row in rows:
        order = np.lexsort((np.arange(seq), -row))[:k]
        result.append([(int(i), float(row[i])) for i in order])
    return result


def normalisation_error(att: np.ndarray) -> float:
    """The largest ``|row sum - 1|`` over all rows: 0 for a proper attention matrix."""
    att = _as_float(att)
    return float(np.abs(att.astype(np.float64).sum(axis=-1) - 1.0).max())


# ---------------------------------------------------------------------- the normalisation check (issue 11)

NORMALISATION_TOLERANCE = 1e-3  # attention stored as float16 sums to 1 within ~5e-4 a row


@dataclass(frozen=True)
class NormalisationCheck:
    """The largest ``|row sum - 1|`` of an analysis and what the status area says about it.

    ``ok`` is True when ``value <= threshold``; ``value`` is NaN when a weight is not a number (then
    ``ok`` is False). ``value_text`` is the number as shown ("2.4e-04"), ``message`` a plain sentence.
    """

    value: float
    threshold: float = NORMALISATION_TOLERANCE
    rows: int = 0  # rows checked

    @property
    def ok(self) -> bool:
        return bool(self.value <= self.threshold)  # False for NaN

    @property
    def value_text(self) -> str:
        return "not a number" if math.isnan(self.value) else f"{self.value:.1e}"

    @property
    def message(self) -> str:
        if math.isnan(self.value):
            return "Some attention weights are not numbers (NaN): this model's attention cannot be trusted here."
        if self.ok:
            return (f"Attention rows sum to 1 (largest difference {self.value_text}, within "
                    f"{self.threshold:g}): the weights are a proper distribution.")
        return (f"Attention rows do not sum to 1: the largest |row sum − 1| is {self.value_text} (more than "
                f"{self.threshold:g}). This model's attention is not a plain softmax; read the weights with care.")


def normalisation_check(analysis, threshold: float = NORMALISATION_TOLERANCE) -> NormalisationCheck:
    """The normalisation check of an ``AttentionResult`` (its ``attentions`` and any other attention
    array it holds, e.g. ``decoder_attentions``) or of one attention array, layer by layer so a long
    text needs no float64 copy of the whole model."""
    arrays = [np.asarray(analysis)] if isinstance(analysis, np.ndarray) else _attention_arrays(analysis)
    worst, rows = 0.0, 0
    for array in arrays:
        if array.size == 0:
            continue
        blocks = array.reshape((-1,) + array.shape[-3:]) if array.ndim > 3 else array[None]
        for block in blocks:
            error = normalisation_error(block)
            if math.isnan(error):
                worst = math.nan
            elif not math.isnan(worst):
                worst = max(worst, error)
            rows += int(np.prod(block.shape[:-1]))
    return NormalisationCheck(value=float(worst), threshold=threshold, rows=rows)


def _attention_arrays(result) -> list[np.ndarray]:
    """``attentions`` and every other array field whose name ends in ``attentions`` (seq2seq results). A
    result too long to hold its maps gives a sample instead: the first, middle and last rows of every head."""
    names = [f.name for f in dataclasses.fields(result)] if dataclasses.is_dataclass(result) else []
    if getattr(result, "dense", True):
        arrays = [result.attentions]
    else:
        n = result.seq_len
        picked = sorted({0, n // 2, n - 1})
        arrays = [np.stack([np.stack([result.rows(layer, head, picked) for head in range(result.num_heads)])
                            for layer in range(result.num_layers)])]
    for name in names:
        value = getattr(result, name, None)
        if name.endswith("attentions") and isinstance(value, np.ndarray) and value.ndim >= 2:
            arrays.append(value)
    return arrays
