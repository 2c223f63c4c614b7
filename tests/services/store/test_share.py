"""Short server-side ids for long texts (issue 11): stored in the shared cache, strict ids, expiry."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from attention_explorer.services import InputError, config
from attention_explorer.services.store import cache, share


def test_a_text_round_trips_by_its_short_id(settings):
    text = "The cat sat on the mat because it was tired. " * 60
    short_id = share.store_text(text, "It was a long day.", "all-MiniLM-L6-v2")
    assert share.is_share_id(short_id) and len(short_id) == 12
    assert share.load_text(short_id) == {"text": text, "pair": "It was a long day.", "model": "all-MiniLM-L6-v2"}
    assert share.store_text(text, "It was a long day.", "all-MiniLM-L6-v2") == short_id  # same text, same id
    assert share.store_text(text, None, "all-MiniLM-L6-v2") != short_id
    assert share.load_text(share.store_text("猫坐在垫子上。")) == {"text": "猫坐在垫子上。", "pair": None, "model": None}


def test_the_entry_lives_in_the_shared_cache_not_only_in_this_process(settings):
    short_id = share.store_text("A text for a colleague.")
    cache.clear_local()  # this process's memo forgotten: the shared backend answers
    assert share.load_text(short_id)["text"] == "A text for a colleague."


@pytest.mark.parametrize("junk", [None, "", "abc", "a" * 11, "a" * 13, "../../../etc", "abcdefghijk!", "ａｂｃｄｅｆｇｈｉｊｋｌ",
                                  "abcdef\nghijk", 123456789012, ["abcdefghijkl"], {"id": "x"}, b"abcdefghijkl"])
def test_junk_ids_are_refused_before_the_cache_is_asked(settings, monkeypatch, junk):
    asked = []
    monkeypatch.setattr(cache, "lookup", lambda key: asked.append(key))
    assert share.is_share_id(junk) is False
    assert share.load_text(junk) is None
    assert asked == []


def test_an_unknown_or_expired_id_is_none(tmp_path):
    original = config._settings
    try:
        config.configure(config.Settings(cache_type="filesystem", cache_dir=str(tmp_path / "cache"), cache_timeout=1))
        cache.init_cache(Flask("share-expiry"), config.get_settings())
        assert share.load_text("AAAAAAAAAAAA") is None  # well-formed, never made
        short_id = share.store_text("This text will expire.")
        assert share.load_text(short_id) is not None
        time.sleep(2.1)
        cache.clear_local()
        assert share.load_text(short_id) is None  # expired with the cache's lifetime
        assert "no longer kept" in share.EXPIRED_MESSAGE
    finally:
        config._settings = original
        cache.init_cache(Flask("share-restore"), config.get_settings())


def test_an_entry_under_an_id_is_never_replaced_and_a_forged_one_is_refused(settings):
    text = "Shared by Alice."
    first_id = share._id_of(share._entry(text, None, None, 0))
    cache.store(share._key(first_id), '{"v":1,"text":"planted","pair":null,"model":null,"n":0}')
    assert share.load_text(first_id) is None  # the planted entry does not hash to the id
    short_id = share.store_text(text)
    assert short_id != first_id and share.load_text(short_id)["text"] == text
    assert cache.lookup(share._key(first_id)).startswith('{"v":1,"text":"planted"')  # left as it was
    cache.store(share._key("BBBBBBBBBBBB"), "not json")
    assert share.load_text("BBBBBBBBBBBB") is None


def test_texts_the_app_would_not_analyse_are_refused(settings):
    with pytest.raises(InputError):
        share.store_text("   ")
    with pytest.raises(InputError):
        share.store_text("x" * (settings.char_limit + 1))
    with pytest.raises(TypeError):
        share.store_text("fine", model=3)


def test_no_short_ids_without_a_cache(settings):
    original = config._settings
    try:
        config.configure(settings.replace(cache_type="null"))
        cache.init_cache(Flask("share-null"), config.get_settings())
        with pytest.raises(share.ShareError):
            share.store_text("A long text.")
    finally:
        config._settings = original
        cache.init_cache(Flask("share-restore"), config.get_settings())


def test_which_texts_need_a_short_id():
    assert not share.needs_short_id("a" * 1500)
    assert share.needs_short_id("a" * 1501)
    assert share.needs_short_id("a" * 1000, "b" * 501)
    assert not share.needs_short_id("猫" * 166)  # 9 characters each once URL-encoded
    assert share.needs_short_id("猫" * 167)
    assert not share.needs_short_id("")
