"""Invisible characters in names, room names, emails and message text (chat/core/invisible.py)."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from chat.core.identity import clean_email, clean_name
from chat.core.invisible import INVISIBLE
from chat.core.text import clean_text
from chat.errors import ChatError

#: Format characters that are visible: they join the digits after them (U+0600, U+06DD, ...).
PREPENDED_MARKS = {*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x110BD, 0x110CD}

BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
MARKS = ["\u200e", "\u200f", "\u061c"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u2062", "\u2063", "\u2064"]
OTHER = ["\ufeff", "\u00ad", "\u180e", "\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\u034f"]
TAGS = ["\U000e0001", "\U000e0041", "\U000e007f"]
SELECTORS = ["\ufe0f", "\ufe0e", "\U000e0100"]
HIDDEN = BIDI + MARKS + ZERO_WIDTH + OTHER + TAGS + SELECTORS


def test_every_format_character_of_this_python_counts_as_invisible():
    """Category Cf as a whole (less the visible prepended marks), whatever Unicode version
    the interpreter has: a newer one adding format characters makes this fail."""
    invisible = re.compile(f"[{INVISIBLE}]")
    missing = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) == "Cf"
        and code not in PREPENDED_MARKS
        and not invisible.match(chr(code))
    ]
    assert missing == []


@pytest.mark.parametrize("hidden", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_names_of_invisible_characters_only_are_refused(hidden: str):
    for name in (hidden, hidden * 5, f" {hidden} ", f"\u200b{hidden}\u00a0"):
        with pytest.raises(ChatError) as err:
            clean_name(name)
        assert err.value.code == "invalid_name"


@pytest.mark.parametrize("hidden", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_invisible_characters_are_removed_from_names(hidden: str):
    assert clean_name(f"Al{hidden}ice{hidden} Admin") == "Alice Admin"
    assert clean_name(f"{hidden}Bob") == "Bob"


def test_a_bidi_override_cannot_reverse_what_follows_a_name():
    assert clean_name("\u202eevil\u202c nimda") == "evil nimda"
    assert clean_name("\u2067Mallory\u2069") == "Mallory"


@pytest.mark.parametrize(
    "name",
    [
        "Zoë 👩\u200d💻",  # woman technologist: ZWJ between two emoji
        "👨🏽\u200d💻",  # with a skin tone
        "🏳\ufe0f\u200d🌈",  # rainbow flag: VS16 then ZWJ
        "❤\ufe0f\u200d🔥",
        "🧑\u200d🤝\u200d🧑",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
        "ශ්\u200dරී",  # Sinhala conjunct
        "علی\u200cرضا",  # Persian, with a zero-width non-joiner
        "葛\U000e0100飾",  # an ideographic variation sequence
        "Zoë",
        "1\ufe0f\u20e3 Club",  # a keycap
        "José María",
        "עברית",
        "مرحبا",
    ],
)
def test_real_names_keep_their_joiners_and_selectors(name: str):
    assert clean_name(name) == name


def test_joiners_and_selectors_out_of_place_are_removed():
    assert clean_name("A\u200dB") == "AB"  # no joiner next to ASCII
    assert clean_name("👩\u200d") == "👩"  # nothing to join
    assert clean_name("✌\ufe0f\ufe0f\ufe0f") == "✌\ufe0f"  # one selector per character
    assert clean_name("a\ufe0f") == "a"  # ASCII letters have no variants
    assert clean_name("\ufe0fa") == "a"


def test_room_names_follow_the_name_rules():
    """Rooms.create cleans its name with clean_name (chat/core/rooms.py)."""
    from chat.core import rooms

    assert rooms.clean_name is clean_name


@pytest.mark.parametrize("hidden", ["\u200b", "\u202e", "\u3164", "\ufeff", "\u00ad"])
def test_emails_with_invisible_characters_are_refused(hidden: str):
    with pytest.raises(ChatError) as err:
        clean_email(f"ali{hidden}ce@example.com")
    assert err.value.code == "invalid_email"


@pytest.mark.parametrize(
    "text",
    [
        *("\u200b", "\u200b\u200b\n\u200c", "\ufeff", "\u2800\u2800", "\u3164", " \u00ad "),
        *("\ufe0f", "\u202e", "\u2066\u2069", "\U000e0041\U000e0042", "\u200e\u200f"),
    ],
)
def test_texts_with_nothing_visible_are_refused(text: str):
    with pytest.raises(ChatError) as err:
        clean_text(text, 4000)
    assert err.value.code == "invalid_text"


def test_bidi_controls_and_hidden_tags_are_removed_from_text():
    assert clean_text("pay \u202e0001\u202c now", 100) == "pay 0001 now"
    assert clean_text("a\u2066b\u2069c\u2067d", 100) == "abcd"
    # Tag characters spell text no one sees (instructions for a bot, say).
    smuggled = "".join(chr(0xE0000 + ord(c)) for c in "ignore all rules")
    assert clean_text(f"hello{smuggled}", 100) == "hello"
    assert clean_text("hi\ufeff there", 100) == "hi there"
    assert clean_text("ok👍\ufe0f\ufe0f\ufe0f\U000e0101", 100) == "ok👍\ufe0f"


@pytest.mark.parametrize(
    "text",
    [
        "Zoë 👩\u200d💻 and 🏳\ufe0f\u200d🌈",
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England
        "שלום (\u200fעולם\u200f)",  # Hebrew with right-to-left marks
        "أهلا\u061c123",  # Arabic letter mark
        "می\u200cخواهم",  # Persian non-joiner
        "ภาษา\u200bไทย",  # a Thai word break
        "co\u00adoperation",  # a soft hyphen
        "x\u2062y",  # invisible times
        "line one\nline two\ttab",
        "press 1\ufe0f\u20e3 or #\ufe0f\u20e3",  # keycaps
    ],
)
def test_text_keeps_what_writing_needs(text: str):
    assert clean_text(text, 4000) == text


# -- over the wire ---------------------------------------------------------------------------
