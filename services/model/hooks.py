"""Forward hooks on stock attention modules: the query, key and value vectors a model computes, and
the value norms of Kobayashi et al. (EMNLP 2020), without modified copies of any model.

How it works
------------
``install(model)`` finds the model's self-attention modules and their projections (once per model,
thread-safely) and registers persistent forward hooks on them. The hooks do nothing unless the
calling thread is inside ``recording(model)``: transformers' own output capturing works the same way
(persistent hooks, a context variable). A loaded model is shared by the requests of a process, so a
hook must never depend on who registered it; the recorder lives in a ``ContextVar`` (one per thread).

Inside ``recording``, each call of an attention module opens a new "layer" (so a module shared by
every layer, as in ALBERT, is counted once per call), and the projections called within it hand their
outputs to that layer: the value projection always, the query and key projections when asked.

Layouts known (``AttentionLayout.family``)
------------------------------------------
- ``bert``: ``query``, ``key``, ``value`` Linear modules (BERT, RoBERTa, ELECTRA, XLM-R, ALBERT ...);
  the output projection is the module's own ``dense`` (ALBERT) or its parent's ``output.dense`` (BERT).
- ``distilbert``: ``q_lin``, ``k_lin``, ``v_lin``, ``out_lin``.
- ``gpt2``: one fused ``c_attn`` Conv1D giving q, k and v side by side, ``c_proj`` (GPT-2 family).
- ``projections``: ``q_proj``, ``k_proj``, ``v_proj`` with ``out_proj`` / ``o_proj`` / ``dense``
  (OPT, GPT-Neo, Llama, and the encoder-decoder models BART, Marian, mBART, Pegasus ...). Rotary models
  match this layout too: their value norms are right (rotary positions touch only queries and keys)
  but their queries and keys are turned after the projections, so ``inside_reason`` says why the
  inside of a head is not available.
- ``t5``: ``q``, ``k``, ``v``, ``o`` Linear modules (T5, mT5, LongT5 ...): value norms yes; the inside of
  a head no, because T5 adds a relative position bias to its scores.

Encoder-decoder models (issue 13)
---------------------------------
Each attention module of an encoder-decoder model gets a ``role``: ``encoder`` (the encoder's
self-attention), ``decoder`` (the decoder's causal self-attention) or ``cross`` (the decoder's
attention over the encoder's output: its queries come from the target, its keys and values from the
source). ``Recorder.value_norms(n, role)`` and ``Recorder.vectors(n, role)`` read the calls of one
role, in order: the encoder's layers, then per decoder layer its self-attention and cross-attention.
The value norms of cross-attention are those of the source tokens (its values), ``(layers, heads, src)``.

Value norms
-----------
For head h, ``f(x_j) = (x_j W_V + b_V) W_O^h`` (the value projection's output for head h, times the
head's rows of the output projection; its bias left out), and the norm is ``‖f(x_j)‖``. With
``W_O^h = R^T Q^T`` (a QR decomposition of ``W_O^h``'s transpose, computed once per model), the norm
is ``‖v_j^h R^T‖``: a ``d_head x d_head`` product per token and head instead of ``d_head x hidden``,
which keeps the cost within a few percent of a forward pass.
"""

from __future__ import annotations

import logging
import threading
import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import N_
from . import progress

log = logging.getLogger(__name__)

_NOT_AVAILABLE = "not available for this model, because "


@dataclass(eq=False)
class AttentionLayout:
    """One self-attention module and where its projections are."""

    family: str
    module: Any  # the attention module: each call is one layer
    q: Any  # projection modules; the same fused module three times for ``gpt2``
    k: Any
    v: Any
    out: Any | None  # the output projection (None when not found: no value norms)
    num_heads: int
    head_dim: int
    scaling: float
    fused: bool = False
    name: str = ""  # the module's name in the model
    role: str = ""  # "encoder", "decoder" or "cross" in an encoder-decoder model; "" otherwise

    def split_qkv(self, fused_out):
        """q, k, v ``(seq, heads * d)`` from a fused projection's output ``(1, seq, 3 * heads * d)``."""
        width = self.num_heads * self.head_dim
        return fused_out[0, :, :width], fused_out[0, :, width:2 * width], fused_out[0, :, 2 * width:3 * width]

    def out_rows(self):
        """The output projection's weight as ``(heads * d, hidden)``: rows = attention output dims."""
        weight = self.out.weight
        return weight if _is_conv1d(self.out) else weight.T

    def value_rt(self):
        """``R^T`` per head, ``(heads, d, d)`` float32, with ``‖v W_O^h‖ = ‖v R^T‖`` (cached; recomputed
        when the output projection's weight changes in place)."""
        import torch

        version = (self.out.weight._version, self.out.weight.data_ptr(), self.num_heads)
        cached = _rt_cache.get(self.out)
        if cached is not None and cached[0] == version:
            return cached[1]
        with torch.inference_mode():
            rows = self.out_rows().detach().to(torch.float64)
            per_head = rows.reshape(self.num_heads, self.head_dim, rows.shape[-1])  # (heads, d, hidden)
            r = torch.linalg.qr(per_head.transpose(1, 2), mode="r").R  # (heads, d, d)
            rt = r.transpose(1, 2).to(torch.float32).contiguous()
        _rt_cache[self.out] = (version, rt)
        return rt


# R^T per output projection module (outlives re-installed hooks; follows in-place weight changes).
_rt_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(eq=False)
class ModelLayout:
    """What the hooks know about one model."""

    layouts: list[AttentionLayout]
    values_reason: str = ""  # why value norms cannot be computed ("" when they can)
    inside_reason: str = ""  # why a head's query and key vectors cannot reproduce its weights
    hooks: list = field(default_factory=list)


# ----------------------------------------------------------------------------------- detection


def _is_conv1d(module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _is_linear(module) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear)


def _out_features(module) -> int:
    return int(module.nf) if _is_conv1d(module) else int(module.out_features)


def _config_heads(config) -> int | None:
    for name in ("num_attention_heads", "n_head", "n_heads", "num_heads"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _module_heads(module, config) -> int | None:
    for name in ("num_attention_heads", "num_heads", "n_heads"):
        value = getattr(module, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return _config_heads(config)


def _scaling(module, family: str, head_dim: int, config) -> float:
    value = getattr(module, "scaling", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if family == "gpt2":  # older GPT2Attention: the flags, not a precomputed factor
        scale = head_dim ** -0.5 if getattr(module, "scale_attn_weights", True) else 1.0
        if getattr(module, "scale_attn_by_inverse_layer_idx", False):
            scale /= float((getattr(module, "layer_idx", 0) or 0) + 1)
        return scale
    if getattr(config, "model_type", "") == "gpt_neo" or family == "t5":  # neither scales its scores
        return 1.0
    return head_dim ** -0.5


def _is_cross(name: str, module) -> bool:
    """Whether an attention module attends from one sequence to another (its keys from elsewhere)."""
    lowered = name.lower()
    last = lowered.rsplit(".", 1)[-1]
    return (bool(getattr(module, "is_cross_attention", False)) or "crossattention" in lowered
            or last in ("encoder_attn", "encdecattention", "cross_attn", "cross_attention"))


def _match(name: str, module, modules: dict[str, Any], config,
           allow_cross: bool = False) -> AttentionLayout | None:
    """The layout of ``module`` when it is an attention module of a known kind, else None (a
    cross-attention module only with ``allow_cross``: encoder-decoder models)."""
    if not allow_cross and (getattr(module, "is_cross_attention", False) or "crossattention" in name.lower()):
        return None
    get = lambda attr: getattr(module, attr, None)  # noqa: E731
    heads = _module_heads(module, config)
    if not heads:
        return None
    if all(_is_linear(get(a)) for a in ("query", "key", "value")):
        out = get("dense") if _is_linear(get("dense")) else None
        if out is None and "." in name:
            parent = modules.get(name.rsplit(".", 1)[0])
            dense = getattr(getattr(parent, "output", None), "dense", None)
            out = dense if _is_linear(dense) else None
        family, q, k, v = "bert", get("query"), get("key"), get("value")
    elif all(_is_linear(get(a)) for a in ("q_lin", "k_lin", "v_lin")):
        family, q, k, v = "distilbert", get("q_lin"), get("k_lin"), get("v_lin")
        out = get("out_lin") if _is_linear(get("out_lin")) else None
    elif _is_conv1d(get("c_attn")) and _is_conv1d(get("c_proj")):
        family, q, k, v, out = "gpt2", get("c_attn"), get("c_attn"), get("c_attn"), get("c_proj")
    elif all(_is_linear(get(a)) for a in ("q_proj", "k_proj", "v_proj")):
        family, q, k, v = "projections", get("q_proj"), get("k_proj"), get("v_proj")
        out = next((get(a) for a in ("out_proj", "o_proj", "dense") if _is_linear(get(a))), None)
    elif all(_is_linear(get(a)) for a in ("q", "k", "v")):
        family, q, k, v = "t5", get("q"), get("k"), get("v")
        out = get("o") if _is_linear(get("o")) else None
    else:
        return None
    fused = family == "gpt2"
    width = _out_features(q) // 3 if fused else _out_features(q)
    if width % heads:
        return None
    head_dim = width // heads
    return AttentionLayout(family=family, module=module, q=q, k=k, v=v, out=out, num_heads=heads,
                           head_dim=head_dim, scaling=_scaling(module, family, head_dim, config), fused=fused,
                           name=name)


def _position_reason(model, config) -> str:
    """Why queries and keys are changed inside the attention module (rotary, ALiBi, relative), or ''."""
    model_type = str(getattr(config, "model_type", ""))
    attn_config = getattr(config, "attn_config", None)
    alibi = (model_type == "bloom" or bool(getattr(config, "alibi", False))
             or bool(getattr(attn_config, "alibi", False) if not isinstance(attn_config, dict)
                     else attn_config.get("alibi", False)))
    if alibi:
        return N_("not available for this model, because it adds a penalty for distance (ALiBi) to the scores "
                  "inside its attention module, so the scores are not the query and key vectors' products alone.")
    rotary = (str(getattr(config, "position_embedding_type", "")) == "rotary"
              or any(getattr(config, a, None) is not None for a in ("rope_theta", "rope_parameters", "rotary_dim",
                                                                     "rotary_pct", "rotary_emb_base"))
              or any("rotary" in type(m).__name__.lower() for m in model.modules()))
    if rotary:
        return N_("not available for this model, because it turns its queries and keys by their position (rotary "
                  "position embeddings) inside the attention module, after the projections this app can observe.")
    relative = str(getattr(config, "position_embedding_type", "absolute") or "absolute")
    if relative.startswith("relative") or getattr(config, "relative_attention_num_buckets", None):
        return N_("not available for this model, because it adds relative position information to the scores "
                  "inside its attention module, so the scores are not the query and key vectors' products alone.")
    return ""


def describe(model) -> ModelLayout:
    """The model's self-attention layouts in order, with the reasons for what cannot be computed."""
    config = getattr(model, "config", None)
    modules = dict(model.named_modules())
    layouts: list[AttentionLayout] = []
    matched: list[str] = []
    first_attention = ""
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    encoder_prefix = _encoder_prefix(model, modules) if seq2seq else None
    for name, module in modules.items():
        if any(name.startswith(m + ".") for m in matched):
            continue  # inside an attention module already matched
        layout = _match(name, module, modules, config, allow_cross=seq2seq)
        if layout is not None:
            if seq2seq:
                layout.role = ("cross" if _is_cross(name, module)
                               else "encoder" if encoder_prefix and name.startswith(encoder_prefix + ".")
                               else "decoder")
            layouts.append(layout)
            matched.append(name)
        elif not first_attention and "attention" in type(module).__name__.lower():
            first_attention = type(module).__name__
    if not layouts:
        reason = N_("not available for this model, because its attention has no query, key and value projections "
                    "in a layout this app knows.")
        return ModelLayout([], values_reason=reason, inside_reason=_position_reason(model, config) or reason)
    values_reason = ""
    if any(layout.out is None for layout in layouts):
        values_reason = N_("not available for this model, because its attention's output projection was not found "
                           "where this app expects it.")
    inside_reason = _position_reason(model, config)
    for layout in layouts:
        if not layout.fused and not (_out_features(layout.q) == _out_features(layout.k) == _out_features(layout.v)):
            reason = N_("not available for this model, because groups of its heads share key and value vectors "
                        "(grouped-query attention), which this app does not unpack yet.")
            values_reason = values_reason or reason
            inside_reason = inside_reason or reason
            break
    return ModelLayout(layouts, values_reason=values_reason, inside_reason=inside_reason)


def _encoder_prefix(model, modules: dict[str, Any]) -> str | None:
    """The name of an encoder-decoder model's encoder module (e.g. ``model.encoder``), or None."""
    try:
        encoder = model.get_encoder()
    except Exception:  # noqa: BLE001 - a model without the usual accessor
        encoder = None
    if encoder is None or encoder is model:
        return None
    return next((name for name, module in modules.items() if module is encoder and name), None)


# ----------------------------------------------------------------------------------- recording


class Recorder:
    """What one forward pass recorded: per attention call (= layer), the projections' outputs."""

    def __init__(self, model, layout: ModelLayout, want_qk: bool) -> None:
        self.model = model
        self.layout = layout
        self.want_qk = want_qk
        self.calls: list[tuple[AttentionLayout, dict[str, Any]]] = []

    def enter(self, layout: AttentionLayout) -> None:
        """A layer's attention starts: the layers before it ran (their progress; a Cancel stops here)."""
        progress.layer_done(len(self.calls), len(self.layout.layouts))
        self.calls.append((layout, {}))

    def capture(self, role: str, output) -> None:
        if self.calls and (role in ("v", "qkv") or self.want_qk):
            self.calls[-1][1][role] = output

    def _calls(self, role: str | None) -> list[tuple[AttentionLayout, dict[str, Any]]]:
        """The calls of one role (``encoder``, ``decoder``, ``cross``), or every call (``None``)."""
        return self.calls if role is None else [c for c in self.calls if c[0].role == role]

    def _check(self, num_layers: int, calls=None) -> str:
        calls = self.calls if calls is None else calls
        if len(calls) != num_layers:
            return (_NOT_AVAILABLE + f"its attention modules ran {len(calls)} times for "
                    f"{num_layers} layers of attention, so this app cannot tell which is which.")
        return ""

    def vectors(self, num_layers: int, role: str | None = None):
        """Per layer ``(layout, q, k, v)``, each ``(heads, seq, d)`` float32 torch, or a reason (str).
        ``role`` picks one kind of attention of an encoder-decoder model (for cross-attention, ``q`` has
        the target's length and ``k`` and ``v`` the source's)."""
        calls = self._calls(role)
        reason = self._check(num_layers, calls)
        if reason:
            return reason
        out = []
        for layout, captured in calls:
            if layout.fused:
                if "qkv" not in captured:
                    return _NOT_AVAILABLE + "its attention module did not call its projection as expected."
                q, k, v = layout.split_qkv(captured["qkv"])
            else:
                if not all(r in captured for r in ("q", "k", "v")):
                    return _NOT_AVAILABLE + "its attention module did not call its projections as expected."
                q, k, v = (captured[r][0] for r in ("q", "k", "v"))
            out.append((layout, *(_heads(t, layout) for t in (q, k, v))))
        return out

    def value_norms(self, num_layers: int, role: str | None = None) -> tuple[np.ndarray | None, str]:
        """``(layers, heads, seq)`` float32 ``‖f^h(x_j)‖`` and "", or None and the reason. Never raises.
        ``role`` picks one kind of attention of an encoder-decoder model (``seq`` is then the keys'
        length: the source's for ``encoder`` and ``cross``, the target's for ``decoder``)."""
        try:
            if self.layout.values_reason:
                return None, self.layout.values_reason
            calls = self._calls(role)
            reason = self._check(num_layers, calls)
            if reason:
                return None, reason
            values = []
            for layout, captured in calls:
                if layout.fused:
                    if "qkv" not in captured:
                        return None, _NOT_AVAILABLE + "its attention module did not call its projection as expected."
                    values.append(layout.split_qkv(captured["qkv"])[2])
                elif "v" in captured:
                    values.append(captured["v"][0])
                else:
                    return None, _NOT_AVAILABLE + "its attention module did not call its value projection as expected."
            import torch

            # Every layer at once (a few large operations, not a few small ones per layer).
            layout = calls[0][0]
            seq = values[0].shape[0]
            if any(lay.num_heads != layout.num_heads or lay.head_dim != layout.head_dim for lay, _ in calls):
                return torch.stack([value_norms_of(_heads(v, lay), lay)
                                    for v, (lay, _) in zip(values, calls)]).numpy(), ""
            v = torch.stack(values).to(torch.float32).view(len(values), seq, layout.num_heads, layout.head_dim)
            rt = torch.stack([lay.value_rt() for lay, _ in calls])  # (layers, heads, d, d)
            return torch.linalg.vector_norm(torch.matmul(v.transpose(1, 2), rt), dim=-1).numpy(), ""
        except Exception as exc:  # noqa: BLE001 - value norms must never break an analysis
            log.warning("value norms failed: %r", exc)
            return None, _NOT_AVAILABLE + f"computing them failed ({type(exc).__name__})."


def _heads(t, layout: AttentionLayout):
    """``(seq, heads * d)`` -> ``(heads, seq, d)`` float32."""
    import torch

    seq = t.shape[0]
    return t.reshape(seq, layout.num_heads, layout.head_dim).transpose(0, 1).to(torch.float32)


def value_norms_of(v, layout: AttentionLayout):
    """``‖v^h W_O^h‖`` for value vectors ``v`` ``(heads, seq, d)``: ``(heads, seq)`` float32 torch."""
    import torch

    return torch.linalg.vector_norm(torch.bmm(v, layout.value_rt()), dim=-1)


_current: ContextVar[Recorder | None] = ContextVar("attention_explorer_recorder", default=None)
_install_lock = threading.Lock()
_installed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _recorder_for(model) -> Recorder | None:
    recorder = _current.get()
    return recorder if recorder is not None and recorder.model is model else None


def install(model) -> ModelLayout:
    """The model's layout, with the (idle) hooks registered on first use. Never raises."""
    found = _installed.get(model)
    if found is not None:
        return found
    with _install_lock:
        found = _installed.get(model)
        if found is not None:
            return found
        try:
            found = describe(model)
        except Exception as exc:  # noqa: BLE001 - an odd model must not break its analysis
            log.warning("attention layout of %s not understood: %r", type(model).__name__, exc)
            reason = _NOT_AVAILABLE + f"its attention modules could not be read ({type(exc).__name__})."
            found = ModelLayout([], values_reason=reason, inside_reason=reason)
        ref = weakref.ref(model)
        done: set[int] = set()
        for layout in found.layouts:
            if id(layout.module) in done:
                continue
            done.add(id(layout.module))
            found.hooks.append(layout.module.register_forward_pre_hook(_enter_hook(ref, layout)))
            roles = [("qkv", layout.q)] if layout.fused else [("q", layout.q), ("k", layout.k), ("v", layout.v)]
            for role, projection in roles:
                found.hooks.append(projection.register_forward_hook(_capture_hook(ref, role)))
        _installed[model] = found
        return found


def _enter_hook(ref, layout: AttentionLayout):
    def hook(module, args):
        recorder = _recorder_for(ref())
        if recorder is not None:
            recorder.enter(layout)
    return hook


def _capture_hook(ref, role: str):
    def hook(module, args, output):
        recorder = _recorder_for(ref())
        if recorder is not None:
            recorder.capture(role, output)
    return hook


def uninstall(model) -> None:
    """Removes the hooks from ``model`` (tests)."""
    with _install_lock:
        found = _installed.pop(model, None)
    for handle in found.hooks if found is not None else ():
        handle.remove()


@contextmanager
def recording(model, want_qk: bool = False):
    """Records the attention projections of the forward passes this thread runs on ``model`` inside it."""
    recorder = Recorder(model, install(model), want_qk)
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)
