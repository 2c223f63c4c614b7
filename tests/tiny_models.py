"""Tiny random transformers models with locally trained tokenizers, for tests and benchmarks.

Everything here is built offline: the configs are written in code, the weights are random (seeded), and the
tokenizer is a byte-level BPE trained with the ``tokenizers`` library on a few hundred lines of generated text, then
saved as a fast tokenizer that ``AutoTokenizer.from_pretrained(folder)`` loads without network access.

Random weights give near-uniform attention, which would make exactness checks meaningless, so every builder
multiplies the query/key projection weights (or the q/k norm weights, for models that normalise q and k) by
``qk_gain`` to obtain peaky rows. The per-family defaults (2 to 18) were picked so that the median row maximum of
the eager attention at 300 tokens is roughly 0.3-0.7 (see ``DEFAULT_GAIN``): peaky, but not one-hot.

Public API
----------
- ``FAMILIES``: name -> builder function ``builder(folder, qk_gain=DEFAULT_GAIN[name], seed=0) -> Path``.
- ``build(family, folder, **kw)``: build one family into ``folder`` (created), return the folder.
- ``build_smollm2_135m_shape(folder, vocab_size=4096, seed=0)``: random Llama with the SmolLM2-135M shape.
- ``train_tokenizer(folder, vocab_size=..., ...)``: train and save the tokenizer only.
- ``sample_text(n_lines, seed)``: the generated training/test text.
- ``MODEL_KIND``: family -> "causal" | "encoder" | "seq2seq" (which Auto class loads it).
- ``load(folder, family, attn_implementation)``: load a built model (eval mode, float32).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
PAD, BOS, EOS, UNK, MASK = range(5)

_SYLLABLES = [
    "ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "en", "dar", "qui", "ve", "sol", "im", "bra", "tor",
    "al", "ex", "nu", "fi", "gam", "ul", "zen", "or", "thi", "pe", "ro", "ma", "cy", "od",
]
_FUNCTION_WORDS = ["the", "a", "of", "and", "to", "in", "is", "that", "it", "was", "for", "on", "with", "as"]


def sample_text(n_lines: int = 400, seed: int = 0) -> list[str]:
    """Generated pseudo-English lines (seeded): a Zipf-like vocabulary of made-up words plus function words."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(600)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(rng.randint(8, 24)):
            if rng.random() < 0.3:
                words.append(rng.choice(_FUNCTION_WORDS))
            else:
                words.append(rng.choices(vocab, weights)[0])
        line = " ".join(words)
        line = line[0].upper() + line[1:] + rng.choice([".", ".", ".", "?", "!", ","])
        lines.append(line)
    return lines


def long_text(n_words: int, seed: int = 1) -> str:
    """A long generated text (for long-input tests): about ``n_words`` words."""
    out, i = [], 0
    while sum(len(s.split()) for s in out) < n_words:
        out.extend(sample_text(100, seed + i))
        i += 1
    return " ".join(out)


def train_tokenizer(folder: str | Path, vocab_size: int = 1024, n_lines: int = 400, seed: int = 0,
                    model_max_length: int = 8192):
    """Train a byte-level BPE on generated text and save it as a fast tokenizer in ``folder``.

    Special tokens get fixed ids: <pad>=0, <s>=1, </s>=2, <unk>=3, <mask>=4. Returns the loaded
    ``PreTrainedTokenizerFast`` (transformers 5.x alias of ``TokenizersBackend``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample_text(n_lines, seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>", mask_token="<mask>",
        model_max_length=model_max_length,
    )
    fast.save_pretrained(folder)
    return fast


def _gain_(weight: torch.Tensor, gain: float, rows: slice | None = None) -> None:
    with torch.no_grad():
        if rows is None:
            weight.mul_(gain)
        else:
            weight[rows].mul_(gain)


def _scale_qk(model, gain: float) -> None:
    """Multiply query/key projections (or q/k norm weights when present) by ``gain``, for every family here."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if hasattr(m, "q_norm") and hasattr(m, "k_norm"):  # Qwen3: q, k are RMS-normalised per head
                _gain_(m.q_norm.weight, gain)
                _gain_(m.k_norm.weight, gain)
            elif hasattr(m, "q_proj") and hasattr(m, "k_proj"):  # Llama, Mistral, Gemma2, gpt-oss, BART, Marian
                _gain_(m.q_proj.weight, gain)
                _gain_(m.k_proj.weight, gain)
            elif hasattr(m, "query_key_value"):  # GPT-NeoX: rows laid out (heads, [q|k|v], head_dim)
                w = m.query_key_value.weight
                h = model.config.num_attention_heads
                d = w.shape[0] // (3 * h)
                w.view(h, 3, d, -1)[:, :2].mul_(gain)
                if m.query_key_value.bias is not None:
                    m.query_key_value.bias.view(h, 3, d)[:, :2].mul_(gain)
            elif hasattr(m, "c_attn") and not hasattr(m, "q_attn"):  # GPT-2 Conv1D: weight (in, 3*hidden)
                hid = m.c_attn.weight.shape[0]
                m.c_attn.weight[:, : 2 * hid].mul_(gain)
            elif hasattr(m, "query") and hasattr(m, "key") and hasattr(m, "value"):  # BERT
                _gain_(m.query.weight, gain)
                _gain_(m.key.weight, gain)
            elif type(m).__name__ == "T5Attention":
                _gain_(m.q.weight, gain)
                _gain_(m.k.weight, gain)


def _save(model, tok, folder: Path, qk_gain: float) -> Path:
    _scale_qk(model, qk_gain)
    model.save_pretrained(folder)
    (folder / "FAMILY_NOTE.txt").write_text(f"random weights, qk_gain={qk_gain}\n")
    return folder


def _common(folder, vocab_size, seed):
    folder = Path(folder)
    tok = train_tokenizer(folder, vocab_size=vocab_size, seed=seed)
    torch.manual_seed(seed)
    return folder, tok, len(tok)


def build_llama(folder, qk_gain=12.0, seed=0):
    """Llama with grouped-query attention: 4 heads, 2 kv heads, head_dim 16, 2 layers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder, tok, V = _common(folder, 1024, seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                      pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=False)
    return _save(LlamaForCausalLM(cfg), tok, folder, qk_gain)


def build_qwen3(folder, qk_gain=2.0, seed=0):
    """Qwen3: per-head q/k RMSNorm, GQA (4/2 heads); layer 1 uses a sliding window of 16 (use_sliding_window)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder, tok, V = _common(folder, 1024, seed)
    cfg = Qwen3Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                      use_sliding_window=True, sliding_window=16, max_window_layers=1,
                      pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=False)
    return _save(Qwen3ForCausalLM(cfg), tok, folder, qk_gain)


def build_mistral(folder, qk_gain=10.0, seed=0):
    """Mistral with sliding_window=16 on every layer, GQA 4/2."""
    from transformers import MistralConfig, MistralForCausalLM

    folder, tok, V = _common(folder, 1024, seed)
    cfg = MistralConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                        sliding_window=16, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    return _save(MistralForCausalLM(cfg), tok, folder, qk_gain)


def build_gemma2(folder, qk_gain=12.0, seed=0):
    """Gemma2: attn_logit_softcapping=10 (small so it bites), query_pre_attn_scalar=24 != head_dim=16,
    alternating sliding (16) / full layers, GQA 4/2."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    folder, tok, V = _common(folder, 1024, seed)
    cfg = Gemma2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                       query_pre_attn_scalar=24, attn_logit_softcapping=10.0, final_logit_softcapping=30.0,
                       sliding_window=16, layer_types=["sliding_attention", "full_attention"],
                       pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    return _save(Gemma2ForCausalLM(cfg), tok, folder, qk_gain)


def build_gpt_neox(folder, qk_gain=12.0, seed=0):
    """GPT-NeoX with partial rotary (25% of head dims), 4 heads of 16."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    folder, tok, V = _common(folder, 1024, seed)
    cfg = GPTNeoXConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=8192, rotary_pct=0.25,
                        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    return _save(GPTNeoXForCausalLM(cfg), tok, folder, qk_gain)


def build_gpt_oss(folder, qk_gain=8.0, seed=0):
    """gpt-oss: learned attention sinks (s_aux), alternating sliding (16) / full layers, GQA 4/2, tiny MoE."""
    from transformers import GptOssConfig, GptOssForCausalLM

    folder, tok, V = _common(folder, 1024, seed)
    cfg = GptOssConfig(vocab_size=V, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                       num_local_experts=4, num_experts_per_tok=2, sliding_window=16,
                       layer_types=["sliding_attention", "full_attention"],
                       pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = GptOssForCausalLM(cfg)
    with torch.no_grad():  # make the sinks matter: logits around the typical row log-sum-exp
        for layer in model.model.layers:
            layer.self_attn.sinks.copy_(torch.linspace(0.0, 8.0, cfg.num_attention_heads))
    return _save(model, tok, folder, qk_gain)


def build_gpt2(folder, qk_gain=12.0, seed=0):
    """GPT-2, 4 heads of 16, learned positions up to 4096."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder, tok, V = _common(folder, 1024, seed)
    cfg = GPT2Config(vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=4096,
                     bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    return _save(GPT2LMHeadModel(cfg), tok, folder, qk_gain)


def build_bert(folder, qk_gain=14.0, seed=0):
    """BERT encoder (bidirectional), 4 heads of 16, 1024 positions."""
    from transformers import BertConfig, BertModel

    folder, tok, V = _common(folder, 1024, seed)
    cfg = BertConfig(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=1024, pad_token_id=PAD)
    return _save(BertModel(cfg, add_pooling_layer=False), tok, folder, qk_gain)


def build_bart(folder, qk_gain=12.0, seed=0):
    """BART encoder-decoder, 2+2 layers, 4 heads of 16, 1024 positions."""
    from transformers import BartConfig, BartForConditionalGeneration

    folder, tok, V = _common(folder, 1024, seed)
    cfg = BartConfig(vocab_size=V, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                     max_position_embeddings=1024, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
                     decoder_start_token_id=EOS, forced_eos_token_id=None)
    return _save(BartForConditionalGeneration(cfg), tok, folder, qk_gain)


def build_t5(folder, qk_gain=1.7, seed=0):
    """T5 encoder-decoder, 2+2 layers, 4 heads of d_kv=16, relative position bias (no scaling)."""
    from transformers import T5Config, T5ForConditionalGeneration

    folder, tok, V = _common(folder, 1024, seed)
    cfg = T5Config(vocab_size=V, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                   relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD)
    model = T5ForConditionalGeneration(cfg)
    with torch.no_grad():  # make the relative bias visible next to the content scores
        for stack in (model.encoder, model.decoder):
            stack.block[0].layer[0].SelfAttention.relative_attention_bias.weight.normal_(0.0, 2.0)
    return _save(model, tok, folder, qk_gain)


def build_marian(folder, qk_gain=18.0, seed=0):
    """Marian encoder-decoder (sinusoidal positions), 2+2 layers, 4 heads of 16."""
    from transformers import MarianConfig, MarianMTModel

    folder, tok, V = _common(folder, 1024, seed)
    cfg = MarianConfig(vocab_size=V, decoder_vocab_size=V, d_model=64, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                       decoder_ffn_dim=128, max_position_embeddings=1024, pad_token_id=PAD, eos_token_id=EOS,
                       decoder_start_token_id=PAD, forced_eos_token_id=None)
    return _save(MarianMTModel(cfg), tok, folder, qk_gain)


def build_smollm2_135m_shape(folder, vocab_size=4096, seed=0, qk_gain=4.0):
    """Random Llama shaped like SmolLM2-135M: 30 layers x 9 heads (3 kv heads), head_dim 64, hidden 576,
    intermediate 1536, tied embeddings, rope_theta 1e5, 8192 positions; small vocabulary (``vocab_size``)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder, tok, V = _common(folder, vocab_size, seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                      rope_parameters={"rope_type": "default", "rope_theta": 100000.0}, tie_word_embeddings=True,
                      rms_norm_eps=1e-5, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    return _save(LlamaForCausalLM(cfg), tok, folder, qk_gain)


DEFAULT_GAIN = {'llama': 12.0, 'qwen3': 2.0, 'mistral': 10.0, 'gemma2': 12.0, 'gpt_neox': 12.0, 'gpt_oss': 8.0, 'gpt2': 12.0, 'bert': 14.0, 'bart': 12.0, 't5': 1.7, 'marian': 18.0}

FAMILIES = {
    "llama": build_llama,
    "qwen3": build_qwen3,
    "mistral": build_mistral,
    "gemma2": build_gemma2,
    "gpt_neox": build_gpt_neox,
    "gpt_oss": build_gpt_oss,
    "gpt2": build_gpt2,
    "bert": build_bert,
    "bart": build_bart,
    "t5": build_t5,
    "marian": build_marian,
}

MODEL_KIND = {
    "llama": "causal", "qwen3": "causal", "mistral": "causal", "gemma2": "causal", "gpt_neox": "causal",
    "gpt_oss": "causal", "gpt2": "causal", "bert": "encoder", "bart": "seq2seq", "t5": "seq2seq",
    "marian": "seq2seq", "smollm2": "causal",
}


def build(family: str, folder: str | Path, **kw) -> Path:
    """Build ``family`` (a key of ``FAMILIES`` or "smollm2") into ``folder``; returns the folder."""
    if family == "smollm2":
        return build_smollm2_135m_shape(folder, **kw)
    return FAMILIES[family](folder, **kw)


def load(folder: str | Path, family: str, attn_implementation: str = "sdpa", dtype=torch.float32):
    """Load a built model in eval mode with the given attention implementation."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = {"causal": AutoModelForCausalLM, "encoder": AutoModel, "seq2seq": AutoModelForSeq2SeqLM}[MODEL_KIND[family]]
    model = cls.from_pretrained(folder, attn_implementation=attn_implementation, dtype=dtype)
    return model.eval()


if __name__ == "__main__":  # python tiny_models.py OUT_DIR [family ...]
    import sys

    out = Path(sys.argv[1])
    fams = sys.argv[2:] or list(FAMILIES)
    for f in fams:
        print(f, build(f, out / f))
