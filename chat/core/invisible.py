"""Invisible characters: what display names and message text may not hide.

Names are shown next to other people's names and messages, so a name must be made of what it
shows.  Removed from names (and room names): every format character (Unicode category Cf:
bidirectional marks, embeddings, overrides and isolates, zero-width spaces and joiners, word
joiners, invisible operators, the soft hyphen, the BOM, tag characters...), fillers that
render as nothing (Hangul fillers, the braille blank, the combining grapheme joiner, ...),
line and paragraph separators, and variation selectors that do not follow a visible
character.  Three uses stay, because real names need them:

- a zero-width joiner or non-joiner *between two visible non-ASCII characters*: emoji
  sequences ("👩‍💻", "🏳️‍🌈"), Indic conjuncts, Persian words; never next to ASCII;
- one variation selector right after a visible non-ASCII character ("❤️", CJK ideograph
  variants), or in a keycap ("1️⃣");
- the tag sequence of a subdivision flag ("🏴󠁧󠁢󠁳󠁣󠁴󠁿").

Message text keeps what writing needs (joiners, LRM/RLM/ALM marks, soft hyphens, zero-width
spaces that Thai and Khmer use as word breaks) and loses what can reorder or hide content:
bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069), deprecated format
characters, the BOM, interlinear annotation controls, tag characters outside a flag, and
surplus variation selectors (hidden payloads ride on them).  A text or name with nothing
visible left is refused by its caller.

The prepended concatenation marks (U+0600-0605, U+06DD, ...) are Cf but visible: they stay.
"""

from __future__ import annotations

import re

#: Category Cf (Unicode 15.1), less the visible prepended concatenation marks.
FORMAT = (
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\ufff9-\ufffb\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
#: Not Cf, yet shown as nothing: Hangul fillers, braille blank, combining grapheme joiner,
#: Khmer inherent vowels, Mongolian free variation selectors, line/paragraph separators.
BLANK = "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b-\u180d\u180f\u2028\u2029"
SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
INVISIBLE = FORMAT + BLANK + SELECTORS
#: Only what can reorder or hide content: removed from message text.
TEXT_REMOVED = "\u202a-\u202e\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f"

_FLAG = "\U0001f3f4[\U000e0020-\U000e007e]{1,32}\U000e007f"
_SHOWN = rf"[^\x00-\x7f\s{INVISIBLE}]"  # a visible non-ASCII character
# Joiners stay between two of them; a VS16 may come before one ("🏳️‍🌈").
_JOINER = rf"(?:(?<={_SHOWN})|(?<={_SHOWN}\ufe0f))[\u200c\u200d](?={_SHOWN})"
# One selector after one of them (ASCII letters have no variants); VS16 in a keycap ("1️⃣").
_SELECTOR = rf"(?<={_SHOWN})[{SELECTORS}]|(?<=[0-9#*])\ufe0f(?=\u20e3)"
_NAME = re.compile(rf"({_FLAG}|{_JOINER}|{_SELECTOR})|[{INVISIBLE}]")
_TEXT = re.compile(rf"({_FLAG}|{_SELECTOR})|[{TEXT_REMOVED}{SELECTORS}]")
_VISIBLE = re.compile(rf"[^\s{INVISIBLE}]")
# One character class is scanned many times faster than the alternation: text without any of
# these (nearly all of it) skips the substitution.
_NAME_SUSPECT = re.compile(rf"[{INVISIBLE}]")
_TEXT_SUSPECT = re.compile(rf"[{TEXT_REMOVED}{SELECTORS}]")


def _kept(match: re.Match[str]) -> str:
    return match.group(1) or ""


def clean_name_chars(text: str) -> str:
    """``text`` without the invisible characters a name may not carry."""
    return _NAME.sub(_kept, text) if _NAME_SUSPECT.search(text) else text


def clean_text_chars(text: str) -> str:
    """``text`` without the characters that can reorder or hide message content."""
    return _TEXT.sub(_kept, text) if _TEXT_SUSPECT.search(text) else text


def has_visible(text: str) -> bool:
    """Whether anything but whitespace and invisible characters is left."""
    return _VISIBLE.search(text) is not None
