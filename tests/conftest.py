"""Shared fixtures: tiny random models built from configs (no hub), settings and cache resets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from services import cache, config, models

ENGLISH_WORDS = (
    "the cat sat on mat because it was tired dog ran in park a an and is are to of play ##ing ##s "
    "hello there world football . , ! ? ' \" < > / ( ) script alert 1"
).split()
CHINESE_CHARS = list("猫坐在垫子上因为它累了。我们你好中国人大学")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GPT2_CORPUS = [
    "The cat sat on the mat because it was tired.",
    "The dog ran in the park and it was happy.",
    "Attention lets each token weigh every other token.",
] * 20


def _vocab(words: list[str]) -> dict[str, int]:
    return {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + words))}


def _build_bert(path: Path, words: list[str], seed: int) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(vocab=_vocab(words), do_lower_case=True, tokenize_chinese_chars=True)
    tokenizer.model_max_length = 64
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64, type_vocab_size=2,
        initializer_range=0.4,  # larger random weights: sharp, non-uniform attention to test against
    )
    model = BertModel(cfg)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _build_gpt2(path: Path, seed: int) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(GPT2_CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        model_max_length=64,
    )
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     initializer_range=0.4, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = GPT2Model(cfg)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Paths of a tiny BERT, GPT-2 and character-level Chinese BERT, built once per session."""
    root = tmp_path_factory.mktemp("models")
    return {
        "bert": str(_build_bert(root / "tiny-bert", ENGLISH_WORDS, seed=0)),
        "gpt2": str(_build_gpt2(root / "tiny-gpt2", seed=1)),
        "chinese": str(_build_bert(root / "tiny-bert-chinese", CHINESE_CHARS, seed=2)),
    }


@pytest.fixture
def settings(tiny_models, tmp_path):
    """Test settings: the bundled default plus the tiny models offered, a simple in-memory cache."""
    original = config._settings
    configured = config.configure(config.Settings(
        models=(config.DEFAULT_MODEL_ID, tiny_models["bert"], tiny_models["gpt2"], tiny_models["chinese"]),
        cache_type="simple",
        cache_dir=str(tmp_path / "cache"),
    ))
    _reset_cache()
    yield configured
    config._settings = original
    _reset_cache()


def _reset_cache() -> None:
    from flask import Flask

    cache.init_cache(Flask("tests"), config.get_settings())


@pytest.fixture(scope="session")
def default_model():
    """The packaged all-MiniLM-L6-v2, loaded once (real weights)."""
    return models.get_model(config.DEFAULT_MODEL_ID)


# ---------------------------------------------------------------- browser tests (dash.testing)
os.environ.setdefault("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")


def pytest_setup_options():
    """Chrome options for dash.testing: Debian's Chromium, headless, no background network."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for arg in ("--headless=new", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1366,900"):
        options.add_argument(arg)
    return options
