"""Shared fixtures: tiny random models built from configs (no hub), settings and cache resets."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # never a hub, whatever the shell says
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from attention_explorer.services import config
from attention_explorer.services.model import loading as models
from attention_explorer.services.store import cache

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


SEQ2SEQ_CORPUS = [
    "The cat sat on the mat because it was tired.",
    "Le chat était assis sur le tapis parce qu'il était fatigué.",
    "The dog ran in the park and it was happy.",
    "Le chien courait dans le parc et il était content.",
    "Attention lets each token weigh every other token.",
] * 20


def _fast_tokenizer(tok, specials: dict[str, str], template: tuple[str, str], model_max_length: int = 64):
    """A ``PreTrainedTokenizerFast`` around a trained ``tokenizers`` object, with its special tokens and a
    post-processor that adds them (``template``: single, pair)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    single, pair = template
    used = [t for t in dict.fromkeys(specials.values()) if t in single or t in pair]
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, tok.token_to_id(t)) for t in used])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **specials)


def _sentencepiece_like(specials: list[str], vocab_size: int = 400):
    """A Unigram tokenizer with SentencePiece's "▁" word marker (as T5's and Marian's), trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(SEQ2SEQ_CORPUS, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"))
    return tok


def _build_bart(path: Path, seed: int) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SEQ2SEQ_CORPUS, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer = _fast_tokenizer(bpe, {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                                      "unk_token": "<unk>"}, ("<s> $A </s>", "<s> $A </s> </s> $B </s>"))
    torch.manual_seed(seed)
    cfg = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=2, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id, forced_eos_token_id=None, init_std=0.4,
    )
    BartForConditionalGeneration(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _build_t5(path: Path, seed: int) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _fast_tokenizer(_sentencepiece_like(["<pad>", "</s>", "<unk>"]),
                                {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
                                ("$A </s>", "$A </s> $B </s>"))
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, n_positions=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, initializer_factor=4.0,
    )
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _build_marian(path: Path, seed: int) -> Path:
    import torch
    from transformers import MarianConfig, MarianMTModel

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _fast_tokenizer(_sentencepiece_like(["</s>", "<unk>", "<pad>"]),
                                {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
                                ("$A </s>", "$A $B </s>"))
    torch.manual_seed(seed)
    cfg = MarianConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=None, init_std=0.4,
    )
    MarianMTModel(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_seq2seq_models(tmp_path_factory) -> dict[str, str]:
    """Paths of tiny random BART, T5 and Marian models (tokenizers trained here, no hub), built once."""
    root = tmp_path_factory.mktemp("seq2seq")
    return {
        "bart": str(_build_bart(root / "tiny-bart", seed=3)),
        "t5": str(_build_t5(root / "tiny-t5", seed=4)),
        "marian": str(_build_marian(root / "tiny-marian", seed=5)),
    }


@pytest.fixture
def seq2seq_settings(settings, tiny_seq2seq_models):
    """``settings`` with the tiny BART, T5 and Marian offered too."""
    return config.configure(models=settings.models + tuple(tiny_seq2seq_models.values()))


@pytest.fixture
def s2s(seq2seq_settings, tiny_seq2seq_models):
    """Settings offering the tiny seq2seq models, writing at most 6 tokens (fast); the models by name."""
    config.configure(max_new_tokens=6)
    return tiny_seq2seq_models


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


@pytest.fixture
def compute_calls(monkeypatch):
    """The texts of the forward passes run in this process (``services.forward.compute`` counted)."""
    import threading

    from attention_explorer.services.model import forward

    calls: list[str] = []
    real = forward.compute
    lock = threading.Lock()

    def counting(loaded, text, *args, **kwargs):
        with lock:
            calls.append(text)
        return real(loaded, text, *args, **kwargs)

    monkeypatch.setattr(forward, "compute", counting)
    return calls


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on loopback for one test (a failure, not a skip, when Redis is missing)."""
    import shutil

    from tests.servers import REDIS_MISSING, RedisServer

    if shutil.which("redis-server") is None:
        pytest.fail(REDIS_MISSING, pytrace=False)
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_app(settings):
    """``make_app(**changes)``: ``app.create_app`` for the current settings with ``changes`` (importing
    ``app`` builds its module-level app from the environment; the test's settings are kept)."""
    from attention_explorer import app as app_module

    def build(**changes):
        return app_module.create_app(settings.replace(**changes))

    return build


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> str:
    """A tiny random Llama with grouped-query attention (2 layers x 4 heads, 2 key/value heads, 8,192
    positions: tests/tiny_models.py), built once for the whole run."""
    from tests import tiny_models as tm

    return str(tm.build("llama", tmp_path_factory.mktemp("llama") / "llama"))


@pytest.fixture
def hold_steps(monkeypatch):
    """``hold_steps(module)``: a ``tests.helpers.Gate`` set as ``module.step_hook`` (callbacks.analyze's
    layers, callbacks.atlas's heads), so a background pass waits at each step until the test opens it;
    every gate is opened at teardown."""
    from tests.helpers import Gate

    gates = []

    def hold(module):
        gate = Gate()
        monkeypatch.setattr(module, "step_hook", gate)
        gates.append(gate)
        return gate

    yield hold
    for gate in gates:
        gate.go.set()


@pytest.fixture
def seq2seq_page(dash_duo, tiny_models, tiny_seq2seq_models):
    """The app in headless Chromium (dash.testing) offering the default model, the tiny BART and GPT-2
    (6 new tokens at most), started."""
    from attention_explorer.app import create_app

    app = create_app(config.Settings(models=(config.DEFAULT_MODEL_ID, tiny_seq2seq_models["bart"], tiny_models["gpt2"]),
                                     cache_type="simple", max_new_tokens=6))
    dash_duo.start_server(app)
    return dash_duo


@pytest.fixture
def chinese_page(dash_duo, tiny_models):
    """The app in headless Chromium (dash.testing) offering the default model and the tiny Chinese BERT,
    started with the languages' catalogs read afresh, its first grid drawn."""
    from attention_explorer.app import create_app
    from attention_explorer.components import i18n

    i18n.reset()
    app = create_app(config.Settings(models=(config.DEFAULT_MODEL_ID, tiny_models["chinese"]), cache_type="simple"))
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#head-grid .heatmaplayer", timeout=60)
    return dash_duo
