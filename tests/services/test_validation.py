"""Cutting a text to the character limit (services/validation.py ``cut_text``, issue 19): at a whole
character, whatever the text is made of."""

from __future__ import annotations

import pytest

from attention_explorer.services.validation import cut_text


@pytest.mark.parametrize("text, limit, expected", [
    ("abcdef", 3, "abc"),
    ("abc", 3, "abc"),
    ("猫坐在垫子上", 3, "猫坐在"),
    ("e\u0301e\u0301e\u0301", 3, "e\u0301"),  # é written as e + a combining accent: never a bare e
    ("ab\U0001F469\u200d\U0001F4BBcd", 4, "ab"),  # 👩‍💻 is one character of three code points
    ("ab\U0001F469\u200d\U0001F4BBcd", 5, "ab\U0001F469\u200d\U0001F4BB"),
    ("x\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA", 4, "x\U0001F1EB\U0001F1F7"),  # 🇫🇷🇩🇪: two flags, two code points each
    ("x\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA", 2, "x"),
    ("a\u2764\ufe0fb", 2, "a"),  # ❤️ with its variation selector
    ("a\U0001F44D\U0001F3FDb", 2, "a"),  # 👍🏽 with its skin tone
    ("a\ud83d\ude00b", 2, "a"),  # a surrogate pair as a browser may send it, never split
    ("line\r\nnext", 5, "line"),
])
def test_a_cut_keeps_every_character_whole(text, limit, expected):
    assert cut_text(text, limit) == expected


def test_a_run_of_joined_characters_longer_than_the_look_back_is_cut_at_the_limit():
    text = "a" + "\u0301" * 100
    assert cut_text(text, 50) == text[:50]


def test_a_cut_looks_at_a_few_characters_only():
    class Counted(str):
        reads = 0

        def __getitem__(self, index):
            Counted.reads += 1
            return str.__getitem__(self, index)

    text = Counted("x" * 1_000_000)
    assert len(cut_text(text, 5000)) == 5000 and Counted.reads < 10
