"""Model ids (one spelling, bounded fingerprints, messages that reveal nothing) and input limits (issue 9).

Each test fails on the code before issue 9: "GPT2"-style spellings were separate models (or failed),
a fingerprint walked the whole folder (``~`` walked the home folder), messages said which folders
exist and quoted paths the person never typed, ids and texts were not bounded before per-character
work, and text with nothing left after tokenizing was analysed as its special tokens.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from attention_explorer.services import (
    InputError,
    ModelLoadError,
    ModelNotAllowedError,
    config,
    extract_attention,
    validation,
)
from attention_explorer.services.model import forward
from attention_explorer.services.model import loading as models

SENTENCE = "The cat sat on the mat because it was tired."
GENERIC = "is not a model folder this server can read"


# --------------------------------------------------------------------------------------------- one spelling


def test_one_canonical_spelling_per_model(settings, tiny_models, compute_calls):
    bert = tiny_models["bert"]
    config.configure(models=config.get_settings().models + ("gpt2",))
    models.unload_all()
    assert models.check_allowed("GPT2") == "gpt2"
    assert models.check_allowed("  All-MiniLM-L6-v2 ") == config.DEFAULT_MODEL_ID
    shouted = bert.upper()  # the same configured model, typed in capitals (no such folder on disk)
    assert models.check_allowed(shouted) == bert
    first = extract_attention(SENTENCE, shouted)
    second = extract_attention(SENTENCE, bert)
    assert first.model_id == bert and second.model_id == bert
    assert compute_calls == [SENTENCE]  # one cache entry for both spellings
    assert models.loaded_models() == [bert]  # one registry entry
    assert models.get_model(shouted) is models.get_model(bert)


def test_bundled_aliases_are_one_model(settings):
    config.configure(allow_any_model=True)
    models.unload_all()
    for alias in ("sentence-transformers/all-MiniLM-L6-v2", "ALL-MINILM-L6-V2", "all-MiniLM-L6-v2"):
        assert models.check_allowed(alias) == config.DEFAULT_MODEL_ID


def test_an_over_long_model_id_is_refused_briefly(settings):
    config.configure(allow_any_model=True)
    with pytest.raises(ModelNotAllowedError) as info:
        extract_attention(SENTENCE, "x" * 100_000)
    assert len(str(info.value)) < 200


# --------------------------------------------------------------------------------------------- fingerprints


def test_the_home_folder_is_never_walked(settings, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "deep" / "deeper").mkdir(parents=True)
    (home / "deep" / "deeper" / "notes.txt").write_text("private")
    monkeypatch.setenv("HOME", str(home))
    config.configure(allow_any_model=True)

    def no_walk(*_args, **_kwargs):
        raise AssertionError("walked a folder tree")

    monkeypatch.setattr(Path, "rglob", no_walk)
    monkeypatch.setattr(os, "walk", no_walk)
    monkeypatch.setattr(models, "_load", lambda *_: pytest.fail("tried to load the home folder as a model"))
    for typed in ("~", "/", "~/deep"):
        with pytest.raises(ModelLoadError, match=GENERIC) as info:
            extract_attention(SENTENCE, typed)
        assert f"“{typed}”" in str(info.value) and str(home) not in str(info.value)


def test_fingerprint_reads_only_the_models_own_files(settings, tiny_models, tmp_path):
    model = Path(shutil.copytree(tiny_models["bert"], tmp_path / "bert-copy"))
    before = models.fingerprint(str(model))
    (model / "runs" / "checkpoint-1").mkdir(parents=True)
    (model / "runs" / "checkpoint-1" / "model.safetensors").write_bytes(b"x" * 100)
    for i in range(50):
        (model / f"notes-{i}.txt").write_text("not part of the model")
    assert models.fingerprint(str(model)) == before  # nested folders and other files are not looked at
    config_file = model / "config.json"
    config_file.write_text(config_file.read_text() + "\n")
    assert models.fingerprint(str(model)) != before  # the model's own files are


# --------------------------------------------------------------------------------------------- messages


def test_messages_do_not_reveal_which_folders_exist(settings, tmp_path, monkeypatch):
    config.configure(allow_any_model=True)
    real_load = models._load
    monkeypatch.setattr(models, "_load", lambda *_: pytest.fail("loaded a folder without config.json"))
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    typed_ids = ["/no/such/folder", str(empty), str(a_file), "/etc", "./relative/missing"]
    messages = []
    for typed in typed_ids:
        with pytest.raises(ModelLoadError) as info:
            extract_attention(SENTENCE, typed)
        messages.append(str(info.value).replace(f"“{typed}”", "“ID”"))
    assert len(set(messages)) == 1 and GENERIC in messages[0]  # the same words whether it exists or not
    assert "exist" not in messages[0]
    # A hub-style id that happens to be a folder in the server's working directory answers like a
    # hub id that is not there.
    monkeypatch.setattr(models, "_load", real_load)  # offline: the hub id fails to download
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    hub_like = []
    for typed in ("org/model", "org/missing-model"):
        with pytest.raises(ModelLoadError) as info:
            extract_attention(SENTENCE, typed)
        hub_like.append(str(info.value).replace(f"“{typed}”", "“ID”"))
    assert hub_like[0] == hub_like[1]


def test_a_typed_model_folder_that_fails_to_load_names_no_other_path(settings, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "m").mkdir(parents=True)
    (home / "m" / "config.json").write_text("{}")  # no model_type: transformers' message quotes the full path
    monkeypatch.setenv("HOME", str(home))
    config.configure(allow_any_model=True)
    with pytest.raises(ModelLoadError, match="could not be loaded") as info:
        extract_attention(SENTENCE, "~/m")
    assert "“~/m”" in str(info.value) and str(tmp_path) not in str(info.value)


# --------------------------------------------------------------------------------------------- text limits


def test_character_limit_is_checked_before_any_per_character_work(settings, tiny_models, monkeypatch):
    real = validation.clean_text
    limit = settings.char_limit

    def bounded(text):
        assert len(text) <= limit, "looked at every character of an over-long text"
        return real(text)

    monkeypatch.setattr(validation, "clean_text", bounded)
    monkeypatch.setattr(forward, "get_model", lambda *_: pytest.fail("model loaded"))
    for size in (limit + 1, 5_000_000):
        with pytest.raises(InputError, match=f"{size:,} characters; the limit is {limit:,}"):
            extract_attention("a" * size, tiny_models["bert"])
    with pytest.raises(InputError, match="second sentence"):
        extract_attention("fine", tiny_models["bert"], text_pair="b" * (limit + 1000))


@pytest.mark.parametrize("text", ["\u200b\u200b\u200b", "\u200d", "\u0301\u0302\u0303", "\u200b\u0301\ufeff"])
def test_text_with_nothing_left_after_tokenizing_is_refused(settings, tiny_models, text):
    with pytest.raises(InputError, match="Nothing is left of the text") as info:
        extract_attention(text, tiny_models["bert"])
    assert info.value.title == "Check the text"
    assert "zero-width" in str(info.value)


def test_second_sentence_with_nothing_left_is_refused(settings, tiny_models):
    with pytest.raises(InputError, match="Nothing is left of the second sentence"):
        extract_attention("the cat sat", tiny_models["bert"], text_pair="\u200b\u200b")
    assert extract_attention("the cat\u200b sat", tiny_models["bert"]).seq_len == 5  # content beside them is fine


# --------------------------------------------------------------------------------------------- not on this machine (issue 19)


@pytest.fixture
def hub_models(settings, monkeypatch, tmp_path):
    """Settings offering two hub models that are not on this machine (an empty hub cache), and no model
    loading: a test that reaches transformers fails."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    config.configure(models=settings.models + ("gpt2", "bert-base-chinese"))
    models.unload_all()
    monkeypatch.setattr(models, "_load", lambda *a: pytest.fail("waited on the hub for a model not on this machine"))
    yield
    models.unload_all()


def test_a_model_not_downloaded_is_answered_at_once_when_offline(hub_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not models.available_here("gpt2")
    with pytest.raises(ModelLoadError) as info:
        extract_attention(SENTENCE, "gpt2")
    message = str(info.value)
    assert "“gpt2” is not downloaded on this machine" in message and "offline" in message
    assert "make models" in message and "ATTN_MODELS" in message


def test_a_failed_hub_lookup_is_remembered(hub_models, monkeypatch):
    """Online (no HF_HUB_OFFLINE), a model the hub does not answer for is asked about once: picking it
    again is answered at once, until HUB_RETRY_AFTER has passed."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    asked = []

    def no_network(model_id):
        asked.append(model_id)
        raise ConnectionError("no route to host")

    monkeypatch.setattr(models, "_probe_hub", no_network)
    for _ in range(3):
        with pytest.raises(ModelLoadError, match="could not be reached.*make models"):
            extract_attention(SENTENCE, "bert-base-chinese")
    assert asked == ["bert-base-chinese"]
    clock = [models.time.monotonic() + models.HUB_RETRY_AFTER + 1]
    monkeypatch.setattr(models.time, "monotonic", lambda: clock[0])
    with pytest.raises(ModelLoadError):
        extract_attention(SENTENCE, "bert-base-chinese")
    assert asked == ["bert-base-chinese"] * 2  # asked again once the memory expired


def test_a_model_the_hub_knows_is_downloaded(hub_models, monkeypatch):
    """When the hub answers, the model loads (downloads) as before: only a silent hub is cut short."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models, "_probe_hub", lambda model_id: None)
    loads = []
    monkeypatch.setattr(models, "_load", lambda model_id, fp: loads.append(model_id) or "loaded")
    assert models.get_model("gpt2") == "loaded"
    assert loads == ["gpt2"]


# --------------------------------------------------------------------------------------------- display names (issue 19)


def test_local_folders_are_shown_by_their_name_never_their_path(settings, tiny_models, tmp_path):
    other = tmp_path / "elsewhere" / "tiny-bert"  # a second folder named like the first
    other.mkdir(parents=True)
    config.configure(models=settings.models + (str(other), "gpt2"))
    assert models.display_name(tiny_models["gpt2"]) == "tiny-gpt2"
    assert models.display_name(tiny_models["bert"]) == Path(tiny_models["bert"]).parent.name + "/tiny-bert"
    assert models.display_name(str(other)) == "elsewhere/tiny-bert"
    assert models.display_name("gpt2") == "gpt2" and models.display_name("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"


def test_a_model_offered_as_name_equals_path_is_that_folder_under_that_name(settings, tiny_models):
    configured = config.Settings(models=(config.DEFAULT_MODEL_ID, f"tiny english={tiny_models['bert']}"),
                                 cache_type="simple")
    assert configured.models == (config.DEFAULT_MODEL_ID, "tiny english")
    assert configured.model_paths == (("tiny english", tiny_models["bert"]),)
    config.configure(configured)
    result = extract_attention(SENTENCE, "tiny english")
    assert result.model_id == "tiny english" and result.tokens[:3] == ["[CLS]", "the", "cat"]
    assert models.display_name("tiny english") == "tiny english"
    assert models.resolve_source("tiny english") == tiny_models["bert"]
    with pytest.raises(ModelNotAllowedError) as info:  # the offer is listed by names: no path in it
        extract_attention(SENTENCE, "not-offered")
    assert tiny_models["bert"] not in str(info.value) and "tiny english" in str(info.value)


def test_attn_models_reads_names(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTN_MODELS", f"all-MiniLM-L6-v2, chinese = {tmp_path}/bert-base-chinese ,gpt2")
    read = config.Settings.from_env()
    assert read.models == ("all-MiniLM-L6-v2", "chinese", "gpt2")
    assert read.model_paths == (("chinese", f"{tmp_path}/bert-base-chinese"),)
    for bad in ("=/x", "a/b=/x", "name="):
        with pytest.raises(ValueError, match="name=path"):
            config.Settings(models=(bad,))


def test_a_broken_offered_folder_is_named_not_shown_by_path(settings, tmp_path):
    broken = tmp_path / "srv" / "broken-model"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{broken")
    config.configure(models=settings.models + (str(broken),))
    with pytest.raises(ModelLoadError) as info:
        extract_attention(SENTENCE, str(broken))
    assert "“broken-model”" in str(info.value) and str(tmp_path) not in str(info.value)
