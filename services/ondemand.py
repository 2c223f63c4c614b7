"""Attention on demand: exact maps computed from what the model's scores are made of.

A recorded forward pass (``services.model.record``) keeps, per layer, the queries and keys as the model
used them (after rotary positions and any q/k norm; keys grouped as the model has them) and the score
recipe: the layer's own scaling, soft-cap, sliding window, causal flag and learned sinks. From that,
any part of any head's map is computed when asked, exactly (float32, the softmax over the WHOLE row)::

    s[i, j] = (q[h, i] · k[kv(h), j]) · scaling
    s       = softcap · tanh(s / softcap)                 (Gemma2; when the layer has one)
    s[i, j] = -inf  where j > i (causal) or j <= i - window (sliding window)
    w[i, :] = exp(s[i, :] - logsumexp(s[i, :], sink[h]))  (the sink only for models with learned sinks:
                                                          their rows then sum to less than 1)

Memory stays O(rows x chunk): nothing here builds more than a few million floats at once, whatever the
length. The bottom of the services: numpy and torch only (no model is loaded here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Work budget (elements of a float32 temporary) for chunked computations: 2**22 floats = 16 MB.
BUDGET = 1 << 22


@dataclass(frozen=True)
class LayerRecipe:
    """One layer's queries, keys and score recipe (torch tensors, float32 or the model's half dtype).

    ``q``: (heads, n_q, d); ``k``: (kv_heads, n_k, d); query head ``h`` uses key head ``h // (heads //
    kv_heads)``. ``window``: the number of keys a query sees counting itself (None: all); ``softcap`` and
    ``sinks`` (heads,): None when the layer has none."""

    q: object
    k: object
    scaling: float
    causal: bool
    window: int | None = None
    softcap: float | None = None
    sinks: object | None = None

    @property
    def heads(self) -> int:
        return int(self.q.shape[0])

    @property
    def n_queries(self) -> int:
        return int(self.q.shape[1])

    @property
    def n_keys(self) -> int:
        return int(self.k.shape[1])

    def kv_head(self, h: int) -> int:
        """The key/value head query head ``h`` shares (grouped-query attention)."""
        return int(h) // max(1, self.heads // int(self.k.shape[0]))

    def live_keys(self, qmin: int, qmax: int) -> tuple[int, int]:
        """The key range [lo, hi) outside which every weight of queries qmin..qmax is exactly 0."""
        lo, hi = 0, self.n_keys
        if self.causal:
            hi = min(hi, qmax + 1)
        if self.window is not None:
            lo = max(0, qmin - self.window + 1)
        return lo, max(hi, lo)

    def allowed(self, qpos, k0: int, k1: int):
        """Boolean (len(qpos), k1 - k0): which keys each query may see (None: all of them)."""
        import torch

        kpos = torch.arange(k0, k1, device=qpos.device)
        mask = None
        if self.causal:
            mask = kpos[None, :] <= qpos[:, None]
        if self.window is not None:
            inside = kpos[None, :] > (qpos[:, None] - self.window)
            mask = inside if mask is None else mask & inside
        return mask


def recipe(queries: np.ndarray, keys: np.ndarray, scaling: float, causal: bool, window: int | None = None,
           softcap: float | None = None, sinks: np.ndarray | None = None, device: str = "cpu") -> LayerRecipe:
    """A ``LayerRecipe`` over numpy arrays (shared, not copied, on the CPU)."""
    import torch

    def tensor(a):
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t if device == "cpu" else t.to(device)

    return LayerRecipe(q=tensor(queries), k=tensor(keys), scaling=float(scaling), causal=bool(causal),
                       window=int(window) if window else None, softcap=float(softcap) if softcap else None,
                       sinks=None if sinks is None else tensor(np.asarray(sinks, dtype=np.float32)))


# ---------------------------------------------------------------------------------------------- the scores


def logits(layer: LayerRecipe, h: int, qpos, k0: int, k1: int, parts: bool = False):
    """Final scores (len(qpos), k1 - k0) float32, -inf where masked; with ``parts`` also the steps
    (``raw`` q·k, ``scaled``, ``capped``, ``allowed``)."""
    import torch

    q = layer.q[h].index_select(0, qpos).float()
    k = layer.k[layer.kv_head(h)][k0:k1].float()
    raw = q @ k.T
    scaled = raw * layer.scaling
    s = torch.tanh(scaled / layer.softcap) * layer.softcap if layer.softcap is not None else scaled
    allowed = layer.allowed(qpos, k0, k1)
    final = s if allowed is None else s.masked_fill(~allowed, float("-inf"))
    if parts:
        return final, {"raw": raw, "scaled": scaled, "capped": s if layer.softcap is not None else None,
                       "allowed": allowed}
    return final


def _softmax(layer: LayerRecipe, h: int, s):
    """Softmax of whole rows of scores (the sink included); a row with nothing to see is 0."""
    import torch

    m = s.max(dim=-1, keepdim=True).values
    if layer.sinks is not None:
        m = torch.maximum(m, layer.sinks[h].float().reshape(1, 1))
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(s - m)
    z = e.sum(dim=-1, keepdim=True)
    if layer.sinks is not None:
        z = z + torch.exp(layer.sinks[h].float() - m)
    return torch.where(z > 0, e / z.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(e))


def _row_lse(layer: LayerRecipe, h: int, qpos):
    """log-sum-exp of whole rows (the sink included), in key chunks: memory O(rows x chunk)."""
    import torch

    lo, hi = layer.live_keys(int(qpos.min()), int(qpos.max()))
    step = max(256, BUDGET // max(1, len(qpos)))
    m = torch.full((len(qpos),), float("-inf"), device=qpos.device)
    z = torch.zeros(len(qpos), device=qpos.device)
    for c0 in range(lo, hi, step):
        s = logits(layer, h, qpos, c0, min(hi, c0 + step))
        m_new = torch.maximum(m, s.max(dim=-1).values)
        safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
        z = z * torch.exp(m - safe) + torch.exp(s - safe[:, None]).sum(dim=-1)
        m = m_new
    lse = torch.where(z > 0, torch.log(z) + torch.where(torch.isfinite(m), m, torch.zeros_like(m)),
                      torch.full_like(z, float("-inf")))
    if layer.sinks is not None:
        lse = torch.logaddexp(lse, layer.sinks[h].float().expand_as(lse))
    return lse


def _live_rows(layer: LayerRecipe, h: int, qpos):
    lo, hi = layer.live_keys(int(qpos.min()), int(qpos.max()))
    return _softmax(layer, h, logits(layer, h, qpos, lo, hi)), lo


def _row_chunk(n_keys: int, multiple: int = 1) -> int:
    return max(multiple, (BUDGET // max(1, n_keys)) // multiple * multiple)


def _positions(values, device):
    import torch

    return torch.as_tensor(np.asarray(values, dtype=np.int64).reshape(-1), device=device)


# ---------------------------------------------------------------------------------------------- exact maps


def rows(layer: LayerRecipe, h: int, queries) -> np.ndarray:
    """Exact weights of the query rows ``queries``: (len(queries), n_keys) float32."""
    import torch

    with torch.inference_mode():
        qpos = _positions(queries, layer.q.device)
        out = torch.zeros(len(qpos), layer.n_keys, dtype=torch.float32)
        step = _row_chunk(layer.n_keys)
        for r0 in range(0, len(qpos), step):
            part = qpos[r0:r0 + step]
            w, lo = _live_rows(layer, h, part)
            out[r0:r0 + len(part), lo:lo + w.shape[1]] = w.cpu()
        return out.numpy()


def head(layer: LayerRecipe, h: int) -> np.ndarray:
    """One head's whole map: (n_queries, n_keys) float32, computed in query chunks."""
    import torch

    with torch.inference_mode():
        out = torch.zeros(layer.n_queries, layer.n_keys, dtype=torch.float32)
        _fill(layer, h, out)
        return out.numpy()


def _fill(layer: LayerRecipe, h: int, out) -> None:
    import torch

    step = _row_chunk(layer.n_keys)
    for q0 in range(0, layer.n_queries, step):
        qpos = torch.arange(q0, min(layer.n_queries, q0 + step), device=layer.q.device)
        w, lo = _live_rows(layer, h, qpos)
        out[q0:q0 + len(qpos), lo:lo + w.shape[1]] = w.cpu()


def layer_maps(layer: LayerRecipe, dtype=np.float32) -> np.ndarray:
    """Every head of the layer: (heads, n_queries, n_keys) in ``dtype`` (float16 halves the memory)."""
    import torch

    with torch.inference_mode():
        out = torch.zeros(layer.heads, layer.n_queries, layer.n_keys,
                          dtype=torch.float16 if dtype == np.float16 else torch.float32)
        for h in range(layer.heads):
            _fill(layer, h, out[h])
        return out.numpy()


def tile(layer: LayerRecipe, h: int, q0: int, q1: int, k0: int, k1: int) -> np.ndarray:
    """The exact slice [q0:q1, k0:k1] of the head's map: the softmax over the whole row, not the tile."""
    import torch

    q0, k0 = max(0, int(q0)), max(0, int(k0))
    q1, k1 = min(int(q1), layer.n_queries), min(int(k1), layer.n_keys)
    with torch.inference_mode():
        out = torch.zeros(max(0, q1 - q0), max(0, k1 - k0), dtype=torch.float32)
        if q1 <= q0 or k1 <= k0:
            return out.numpy()
        step = max(1, BUDGET // max(1, k1 - k0, 4096))
        for r0 in range(q0, q1, step):
            qpos = torch.arange(r0, min(q1, r0 + step), device=layer.q.device)
            lse = _row_lse(layer, h, qpos)
            s = logits(layer, h, qpos, k0, k1)
            finite = torch.isfinite(lse)
            w = torch.exp(s - torch.where(finite, lse, torch.zeros_like(lse))[:, None])
            out[r0 - q0:r0 - q0 + len(qpos)] = torch.where(finite[:, None], w, torch.zeros_like(w)).cpu()
        return out.numpy()


def pooled(layer: LayerRecipe, h: int | None, block: int, how: str = "max") -> np.ndarray:
    """The map pooled in ``block`` x ``block`` cells: (ceil(n_q / b), ceil(n_k / b)), or (heads, ...) for
    ``h=None``. ``how="max"``: the largest weight in each block; ``"mean"``: the mean over its cells (edge
    blocks are smaller). Never more than (chunk x n_keys) at once."""
    import torch

    if how not in ("max", "mean"):
        raise ValueError("how must be 'max' or 'mean'")
    b = max(1, int(block))
    heads = range(layer.heads) if h is None else [int(h)]
    nqb, nkb = -(-layer.n_queries // b), -(-layer.n_keys // b)
    with torch.inference_mode():
        out = torch.zeros(len(heads), nqb, nkb, dtype=torch.float32)
        step = _row_chunk(layer.n_keys, b)
        for q0 in range(0, layer.n_queries, step):
            qpos = torch.arange(q0, min(layer.n_queries, q0 + step), device=layer.q.device)
            lo, hi = layer.live_keys(int(qpos[0]), int(qpos[-1]))
            lo_b, hi_b = (lo // b) * b, min(layer.n_keys, -(-hi // b) * b)
            rows_pad = -(-len(qpos) // b) * b
            cols_pad = -(-(hi_b - lo_b) // b) * b
            for i, hh in enumerate(heads):
                w = _softmax(layer, hh, logits(layer, hh, qpos, lo_b, hi_b))
                if rows_pad != w.shape[0] or cols_pad != w.shape[1]:
                    w = torch.nn.functional.pad(w, (0, cols_pad - w.shape[1], 0, rows_pad - w.shape[0]))
                w4 = w.reshape(rows_pad // b, b, cols_pad // b, b)
                red = w4.amax(dim=(1, 3)) if how == "max" else w4.sum(dim=(1, 3))
                out[i, q0 // b:q0 // b + red.shape[0], lo_b // b:lo_b // b + red.shape[1]] = red.cpu()
        if how == "mean":
            row_sizes = torch.full((nqb,), float(b))
            row_sizes[-1] = layer.n_queries - b * (nqb - 1)
            col_sizes = torch.full((nkb,), float(b))
            col_sizes[-1] = layer.n_keys - b * (nkb - 1)
            out = out / (row_sizes[:, None] * col_sizes[None, :])
        result = out.numpy()
        return result if h is None else result[0]


def steps(layer: LayerRecipe, h: int, query: int) -> dict:
    """One query's row step by step (numpy float32): ``query`` (d,), ``keys`` (n_k, d) as the scores use
    them, ``raw_scores`` (q·k), ``scaled_scores`` (x scaling), ``capped_scores`` (None without soft-cap),
    ``mask`` (bool: the keys it may see), ``logits`` (-inf where masked), ``sink`` and ``weights``."""
    import torch

    with torch.inference_mode():
        qpos = torch.tensor([int(query)], device=layer.q.device)
        final, parts = logits(layer, h, qpos, 0, layer.n_keys, parts=True)
        weights = _softmax(layer, h, final)

        def np32(t):
            return None if t is None else t.detach().to("cpu", torch.float32).numpy()

        kv = layer.kv_head(h)
        return {
            "kv_head": kv, "query": np32(layer.q[h, int(query)]), "keys": np32(layer.k[kv]),
            "scaling": layer.scaling, "softcap": layer.softcap,
            "raw_scores": np32(parts["raw"][0]), "scaled_scores": np32(parts["scaled"][0]),
            "capped_scores": None if parts["capped"] is None else np32(parts["capped"][0]),
            "mask": np.ones(layer.n_keys, bool) if parts["allowed"] is None else parts["allowed"][0].cpu().numpy(),
            "logits": np32(final[0]), "sink": None if layer.sinks is None else float(layer.sinks[h]),
            "weights": np32(weights[0]),
        }
