"""ONE fast forward pass that keeps what each head's scores are made of, not the maps.

Every model transformers 5 runs through its attention interface (Llama, Qwen, Mistral, Gemma, Phi,
OLMo, GPT-NeoX/Pythia, GPT-2, BERT and its family ...) calls its attention as
``attention_interface(module, query, key, value, attention_mask, scaling=..., **kwargs)`` with the
queries and keys already rotated (rotary positions) and normalised (q/k norms). Models are loaded with
``attn_implementation=ATTN_NAME``: our function, registered in ``transformers.AttentionInterface``
(and the stock SDPA mask function under the same name in ``AttentionMaskInterface``, without which the
masking utilities pass no mask for an unknown name). Outside a recording it only hands the call to the
stock SDPA function. Inside ``record(...)`` (a ``ContextVar``: one recorder per thread) it first keeps,
for batch item 0:

- the queries (heads, n, d) and keys (kv_heads, n, d), grouped as the model has them;
- the score recipe: the module's own ``scaling`` (not 1/√d: Gemma passes query_pre_attn_scalar), the
  soft-cap (Gemma2), the sliding window, the causal flag, the learned sinks (gpt-oss);
- the value norms of Kobayashi et al. (2020), ``‖v_{kv(h)}(x_j) W_O[:, h]ᵀ‖``, from the values and the
  layer's output projection, right away (the values are not kept);
- a self-check: on a few rows, the weights the recipe gives times the values equal the attention
  output the model computed (``self_check``, the largest difference).

The mask is described by its structure (causal, window) and checked once per distinct mask tensor,
in row chunks, against the tensor transformers passed; a pattern this cannot describe (an additive
position bias such as ALiBi, padding inside a batch of one) is refused and the model runs eagerly
instead (``services.model.forward``). Soft-capping and sinks, which SDPA cannot compute, run through
``chunked_eager_attention``: the eager maths in query chunks, O(chunk x n) memory.

Never a modified copy of a model class: stock modules, the interface and hooks only.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from ..ondemand import BUDGET, LayerRecipe
from . import progress

ATTN_NAME = "attention_explorer_record"
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("attention_explorer_recording", default=None)
_CROSS_TAGS = ("encoder_attn", "encdecattention", "crossattention", "cross_attn")
_SCORE_KWARGS = {"softcap", "s_aux", "sliding_window", "position_bias", "is_causal"}
_install_lock = threading.Lock()
_installed = [False]


class NotRecordable(RuntimeError):
    """The model's attention cannot be described as q·k with the recipe above (it is then run eagerly)."""


class _Stop(Exception):
    """Raised inside the forward pass once the layer a partial recording wants is done."""


@dataclass
class LayerRecord:
    """One attention call of a recorded pass (numpy, batch item 0)."""

    name: str
    kind: str  # "self" or "cross"
    q: np.ndarray  # (heads, n_q, d) float32 (or the model's half dtype as float32 on the CPU)
    k: np.ndarray  # (kv_heads, n_k, d)
    scaling: float
    causal: bool
    window: int | None = None
    softcap: float | None = None
    sinks: np.ndarray | None = None  # (heads,) float32
    value_norms: np.ndarray | None = None  # (heads, n_k) float32
    self_check: float = float("nan")
    rope: tuple | None = None  # (cos, sin) the module was given (torch, batch item 0), for Inside a head
    pre_q: np.ndarray | None = None  # (heads, n, d) before rotation (after any q norm), when asked for
    pre_k: np.ndarray | None = None  # (kv_heads, n, d)
    rotary_fn: object = None  # the model module's own apply_rotary_pos_emb
    values: np.ndarray | None = None  # (kv_heads, n, d_v) float32, when asked for (``keep_outputs``)
    output: np.ndarray | None = None  # (n, heads, d_v) float32: the attention output the model computed

    def recipe(self) -> LayerRecipe:
        from ..ondemand import recipe

        return recipe(self.q, self.k, self.scaling, self.causal, self.window, self.softcap, self.sinks)


@dataclass
class Recording:
    """Every attention call of one forward pass, in call order (for decoder-only and encoder models the
    index is the layer)."""

    layers: list[LayerRecord] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[LayerRecord]:
        return [layer for layer in self.layers if layer.kind == kind]


def install() -> str:
    """Registers the recording attention function and its mask function under ``ATTN_NAME`` (once)."""
    with _install_lock:
        if not _installed[0]:
            from transformers import AttentionInterface
            from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

            AttentionInterface.register(ATTN_NAME, _recording_attention)
            AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
            _installed[0] = True
    return ATTN_NAME


def record(model, inputs: dict, pre_rope_layers: set[int] | None = None,
           stop_after: int | None = None) -> tuple[Recording, object]:
    """One forward pass of ``model`` (loaded with ``attn_implementation=ATTN_NAME``) on ``inputs`` (batch
    of one), recording every attention call. ``pre_rope_layers``: layers whose queries and keys are also
    kept before rotation, with their values and the attention output the model computed (Inside a head).
    ``stop_after``: end the pass once that layer is recorded (the layers after it are not needed; the
    outputs returned are then None). Raises ``NotRecordable`` when the model makes no call through the
    interface or its mask is not one the recipe describes."""
    import torch

    install()
    recorder = _Recorder(model, pre_rope_layers, stop_after)
    token = _ACTIVE.set(recorder)
    recorder.install_hooks()
    outputs = None
    try:
        with torch.inference_mode():
            outputs = model(**inputs, use_cache=False, return_dict=True)
    except _Stop:
        pass
    finally:
        recorder.remove_hooks()
        _ACTIVE.reset(token)
    if not recorder.recording.layers:
        raise NotRecordable(f"{type(model).__name__} made no call through transformers' attention interface")
    return recorder.recording, outputs


def recordable(model) -> bool:
    """Whether ``model`` runs its attention through our function (it was loaded with ``ATTN_NAME``)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None) == ATTN_NAME


# ---------------------------------------------------------------------------------------------- the function


def _recording_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                         **kwargs):
    """The registered attention function: record (inside ``record``), then the stock computation."""
    recorder: _Recorder | None = _ACTIVE.get()
    layer = None
    if recorder is not None:
        layer = recorder.capture(module, query, key, value, attention_mask, scaling, is_causal, kwargs)
    if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
        out = chunked_eager_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      is_causal=is_causal, **kwargs)
    else:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        out = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                     is_causal=is_causal, **kwargs)
    if layer is not None:
        recorder.check(layer, value, out[0])
        recorder.after(layer, value, out[0])
        progress.layer_done(len(recorder.recording.layers), recorder.total)  # may stop the pass (Cancel)
    return out


def chunked_eager_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None,
                            s_aux=None, is_causal=None, **kwargs):
    """Eager-equivalent attention in query chunks (memory O(heads x chunk x n_k)), for what SDPA cannot
    compute: Gemma2's soft-cap (scores x scaling, tanh cap, + mask, softmax in float32) and gpt-oss's
    sinks (a sink logit per head appended, softmax, the sink column dropped). Returns
    ``(attn_output (b, n_q, heads, d_v), None)`` like every attention-interface function."""
    import torch

    b, heads, nq, d = query.shape
    kv, nk, dv = key.shape[1], key.shape[2], value.shape[-1]
    group = heads // kv
    scaling = d ** -0.5 if scaling is None else scaling
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = causal and attention_mask is None and nq > 1
    out = torch.empty(b, nq, heads, dv, dtype=query.dtype, device=query.device)
    keys_t = key.unsqueeze(2).transpose(-1, -2)  # (b, kv, 1, d, nk)
    values = value.unsqueeze(2)  # (b, kv, 1, nk, dv)
    step = max(1, BUDGET // max(1, heads * nk))
    lowest = torch.finfo(query.dtype).min
    for q0 in range(0, nq, step):
        q1 = min(nq, q0 + step)
        c = q1 - q0
        s = torch.matmul(query[:, :, q0:q1].reshape(b, kv, group, c, d), keys_t).reshape(b, heads, c, nk) * scaling
        if softcap is not None:
            s = torch.tanh(s / softcap) * softcap
        if attention_mask is not None:
            m = attention_mask[:, :, q0:q1]
            s = s.masked_fill(~m, lowest) if m.dtype == torch.bool else s + m
        elif causal:
            later = torch.arange(nk, device=s.device)[None, :] > torch.arange(q0, q1, device=s.device)[:, None]
            s = s.masked_fill(later, lowest)
        if s_aux is not None:
            sinks = s_aux.reshape(1, heads, 1, 1).expand(b, heads, c, 1).to(s.dtype)
            s = torch.cat([s, sinks], dim=-1)
            s = s - s.max(dim=-1, keepdim=True).values
            p = torch.softmax(s, dim=-1, dtype=s.dtype)[..., :-1]
        else:
            p = torch.softmax(s, dim=-1, dtype=torch.float32)
        o = torch.matmul(p.to(value.dtype).reshape(b, kv, group, c, nk), values).reshape(b, heads, c, dv)
        out[:, q0:q1] = o.transpose(1, 2)
    return out, None


# ---------------------------------------------------------------------------------------------- recording


class _Recorder:
    def __init__(self, model, pre_rope_layers: set[int] | None, stop_after: int | None = None) -> None:
        self.model = model
        self.pre_rope_layers = pre_rope_layers
        self.stop_after = stop_after
        self.recording = Recording()
        self.names = {id(m): n for n, m in model.named_modules()}
        self.modules = dict(model.named_modules())
        self.rope: dict[int, tuple] = {}
        self.pre: dict[int, dict] = {}
        self.checked_masks: set[tuple] = set()
        self.handles: list = []
        config = getattr(model, "config", None)
        # layers of attention the pass will run (for its progress): the config's count, when it says
        self.total = int(getattr(config, "num_hidden_layers", 0) or 0)

    def install_hooks(self) -> None:
        """A pre-hook on each module given ``position_embeddings`` (the rotary cos/sin), and, for the layers
        asked for, hooks on the q/k projections (or norms) for the vectors before rotation."""
        for module in self.modules.values():
            try:
                params = inspect.signature(type(module).forward).parameters
            except (TypeError, ValueError):
                continue
            if "position_embeddings" not in params:
                continue
            self.handles.append(module.register_forward_pre_hook(self._rope_hook, with_kwargs=True))
            if self.pre_rope_layers:
                self._hook_projections(module)

    def _rope_hook(self, module, args, kwargs):
        pe = kwargs.get("position_embeddings")
        if isinstance(pe, (tuple, list)) and len(pe) == 2:
            self.rope[id(module)] = (pe[0][0].detach(), pe[1][0].detach())

    def _hook_projections(self, attention) -> None:
        key = id(attention)

        def keep(which):
            def hook(_module, _args, output):
                self.pre.setdefault(key, {})[which] = output.detach()
            return hook

        if hasattr(attention, "q_norm") and hasattr(attention, "k_norm"):
            pairs = (("q", attention.q_norm), ("k", attention.k_norm))
        elif hasattr(attention, "q_proj") and hasattr(attention, "k_proj"):
            pairs = (("q", attention.q_proj), ("k", attention.k_proj))
        elif hasattr(attention, "query_key_value"):  # GPT-NeoX: (..., heads, [q | k | v] x head_dim)
            pairs = (("qkv", attention.query_key_value),)
        else:
            return
        for which, module in pairs:
            self.handles.append(module.register_forward_hook(keep(which)))

    def remove_hooks(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def capture(self, module, query, key, value, mask, scaling, is_causal, kwargs) -> LayerRecord:
        import torch

        if query.shape[0] != 1:
            raise NotRecordable("recording takes a batch of one")
        index = len(self.recording.layers)
        name = self.names.get(id(module), f"attention_{index}")
        heads, nq, d = query.shape[1:]
        kv_heads = key.shape[1]
        if heads % kv_heads:
            raise NotRecordable(f"{name}: {heads} query heads are not groups of {kv_heads} key heads")
        if kwargs.get("position_bias") is not None:
            raise NotRecordable(f"{name}: a position bias is added to the scores")
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        causal = bool(causal) and nq > 1
        window = kwargs.get("sliding_window")
        if window is None and mask is not None:
            window = getattr(module, "sliding_window", None)
        kind = "cross" if any(tag in name.lower() for tag in _CROSS_TAGS) else "self"
        if kind == "cross":
            causal, window = False, None
        sinks = kwargs.get("s_aux")
        layer = LayerRecord(
            name=name, kind=kind, q=_numpy(query[0]), k=_numpy(key[0]),
            scaling=float(d ** -0.5 if scaling is None else scaling), causal=causal,
            window=None if window is None else int(window),
            softcap=None if kwargs.get("softcap") is None else float(kwargs["softcap"]),
            sinks=None if sinks is None else sinks.detach().to("cpu", torch.float32).numpy().copy(),
        )
        if layer.window is not None and not layer.causal:
            raise NotRecordable(f"{name}: a sliding window that looks both ways")
        self._check_mask(layer, mask)
        out_proj = _out_projection(self.modules, name, module, heads * value.shape[-1])
        if out_proj is not None:
            layer.value_norms = _value_norms(value[0], out_proj, heads)
        layer.rope = self.rope.get(id(module))
        layer.rotary_fn = getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb", None)
        pre = self.pre.pop(id(module), None)
        if pre is not None and self.pre_rope_layers and index in self.pre_rope_layers:
            layer.pre_q, layer.pre_k = _before_rotation(pre, heads, kv_heads, d)
        self.recording.layers.append(layer)
        return layer

    def after(self, layer: LayerRecord, value, output) -> None:
        """Keeps the values and the model's attention output of a layer asked for; stops the pass after
        the last layer needed."""
        index = len(self.recording.layers) - 1
        if self.pre_rope_layers and index in self.pre_rope_layers:
            layer.values = _numpy(value[0])
            layer.output = _numpy(output[0])
        if self.stop_after is not None and index >= self.stop_after:
            raise _Stop

    def _check_mask(self, layer: LayerRecord, mask) -> None:
        """The mask transformers passed must be the one the recipe describes (causal, window), checked once
        per distinct mask in row chunks; a batch of one has no padding to describe."""
        import torch

        if mask is None:
            return
        if mask.dim() != 4 or mask.shape[1] != 1:
            raise NotRecordable(f"{layer.name}: an attention mask of shape {tuple(mask.shape)}")
        key = (mask.data_ptr(), tuple(mask.shape), tuple(mask.stride()), mask.dtype, layer.causal, layer.window)
        if key in self.checked_masks:
            return
        grid = mask[0, 0]
        if grid.dtype != torch.bool:
            allowed = grid > torch.finfo(grid.dtype).min / 2
            if bool((grid.masked_fill(~allowed, 0) != 0).any()):
                raise NotRecordable(f"{layer.name}: an additive bias is folded into the mask (e.g. ALiBi)")
            grid = allowed
        nq, nk = grid.shape
        if (nq, nk) != (layer.q.shape[1], layer.k.shape[1]):
            raise NotRecordable(f"{layer.name}: a mask of shape {(nq, nk)} for scores {(layer.q.shape[1], layer.k.shape[1])}")
        recipe = layer.recipe()
        step = max(1, BUDGET // max(1, nk))
        for r0 in range(0, nq, step):
            qpos = torch.arange(r0, min(nq, r0 + step), device=grid.device)
            expected = recipe.allowed(qpos.cpu(), 0, nk)
            got = grid[r0:r0 + step].cpu()
            if not (bool(got.all()) if expected is None else torch.equal(got, expected)):
                raise NotRecordable(f"{layer.name}: its mask is not (causal={layer.causal}, window={layer.window})")
        self.checked_masks.add(key)

    def check(self, layer: LayerRecord, value, output) -> None:
        """The recipe's weights times the values, on a few rows of every head, against the attention
        output the model computed: the largest difference is kept as ``self_check``."""
        import torch

        from ..ondemand import _live_rows

        n = layer.q.shape[1]
        rows = {0, n // 2, n - 1}
        if layer.window is not None:
            rows |= {min(n - 1, layer.window - 1), min(n - 1, layer.window)}
        qpos = torch.tensor(sorted(rows))
        recipe = layer.recipe()
        worst = 0.0
        with torch.inference_mode():
            for h in range(recipe.heads):
                w, lo = _live_rows(recipe, h, qpos)
                live = w.sum(dim=-1) > 0
                if not bool(live.any()):
                    continue
                v = torch.nan_to_num(value[0, recipe.kv_head(h), lo:lo + w.shape[1]].to("cpu", torch.float32))
                got = output[0, qpos.to(output.device), h].to("cpu", torch.float32)
                worst = max(worst, float((w @ v - got)[live].abs().max()))
        layer.self_check = worst if math.isfinite(worst) else float("inf")


def _numpy(t) -> np.ndarray:
    """A copy of a tensor on the CPU: float16 for a float16 model (what it computed, half the bytes),
    float32 otherwise (numpy has no bfloat16). Maps are always computed in float32."""
    import torch

    dtype = torch.float16 if t.dtype == torch.float16 else torch.float32
    return t.detach().to("cpu", dtype).contiguous().numpy().copy()


def _value_norms(value, out_proj, heads: int) -> np.ndarray:
    """``‖v_{kv(h)}(x_j) · W_O[:, h·d:(h+1)·d]ᵀ‖`` for every head and token: (heads, n) float32."""
    import torch

    kv_heads, n, dv = value.shape
    group = heads // kv_heads
    weight = out_proj.float()
    out = torch.empty(heads, n, dtype=torch.float32)
    step = max(1, BUDGET // weight.shape[0])
    with torch.inference_mode():
        for h in range(heads):
            w_h = weight[:, h * dv:(h + 1) * dv]
            v = value[h // group]
            for j0 in range(0, n, step):
                out[h, j0:j0 + step] = (v[j0:j0 + step].float() @ w_h.T).norm(dim=-1).cpu()
    return out.numpy()


def _before_rotation(pre: dict, heads: int, kv_heads: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    if "qkv" in pre:
        fused = pre["qkv"][0]
        per_head = fused.reshape(fused.shape[0], heads, 3 * d)
        q, k = per_head[..., :d], per_head[..., d:2 * d]
    else:
        q = pre["q"][0].reshape(pre["q"].shape[1], heads, d)
        k = pre["k"][0].reshape(pre["k"].shape[1], kv_heads, d)
    return _numpy(q.transpose(0, 1)), _numpy(k.transpose(0, 1))


def _out_projection(modules: dict, name: str, module, in_features: int):
    """``W_O`` (hidden, heads x d_v): the attention block's output is ``concat(heads) @ W_Oᵀ (+ bias)``."""
    import torch

    candidates = []
    for attr in ("o_proj", "out_proj", "out_lin", "o", "dense", "c_proj"):
        sub = getattr(module, attr, None)
        if isinstance(sub, torch.nn.Module) and hasattr(sub, "weight"):
            candidates.append(sub)
    parent = modules.get(name.rsplit(".", 1)[0]) if "." in name else None
    output = getattr(parent, "output", None)  # BERT: BertAttention.output.dense
    if output is not None and isinstance(getattr(output, "dense", None), torch.nn.Linear):
        candidates.append(output.dense)
    for sub in candidates:
        weight = sub.weight.detach()
        if type(sub).__name__ == "Conv1D":  # GPT-2: y = x @ W + b, W (in, out)
            weight = weight.T
        if weight.dim() == 2 and weight.shape[1] == in_features:
            return weight
    return None
