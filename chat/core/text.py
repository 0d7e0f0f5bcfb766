"""Message text rules: trimmed, 1..N characters, no control characters but newline and tab,
no characters that reorder or hide content (``chat/core/invisible.py``), something visible."""

from __future__ import annotations

import re

from chat.core.invisible import clean_text_chars, has_visible
from chat.errors import ChatError

# C0 controls except \t and \n, DEL, and C1 controls: invisible, and some of them make
# terminals and log viewers misbehave.  \r\n and lone \r become \n first.  Lone surrogates
# (JSON allows "\ud800") are not text at all and cannot be encoded as UTF-8.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NEWLINES = re.compile(r"\r\n?")


def clean_text(text: object, max_chars: int) -> str:
    """Return the text as stored, or raise ``invalid_text``."""
    if not isinstance(text, str):
        raise ChatError("invalid_text", "text must be a string")
    cleaned = clean_text_chars(_CONTROL.sub("", _NEWLINES.sub("\n", text))).strip()
    if not has_visible(cleaned):  # "\u200b" alone would show as a blank line
        raise ChatError("invalid_text", "text must not be empty or invisible")
    if len(cleaned) > max_chars:
        raise ChatError("invalid_text", f"text is longer than {max_chars} characters")
    return cleaned
