"""Mentions of a message: explicit user ids, plus ``@word`` for each member whose display name
is that word (compared case-insensitively; the append looks the words up in the room's roster,
DMs here against the other user's name)."""

from __future__ import annotations

import re
from collections.abc import Sequence

#: ``@word`` not inside another word or address (``ann@example.com`` mentions nobody).
_MENTION = re.compile(r"(?<![\w@])@([^\s@]{1,64})")
#: Punctuation that ends a sentence rather than a name ("thanks @ann!").
_TRAILING = ".,;:!?)]}'\"\u2026"
#: Distinct ``@word``s looked up per message: what a person writes, not a scan of the roster.
WORDS_MAX = 10


def mention_words(text: str) -> list[str]:
    """The distinct lowercased ``@word``s of a text, the first ``WORDS_MAX``."""
    words = (m.group(1).rstrip(_TRAILING).lower() for m in _MENTION.finditer(text))
    return list(dict.fromkeys(w for w in words if w))[:WORDS_MAX]


def dm_mentions(
    peer_id: str, peer_name: str | None, explicit: Sequence[str], text: str
) -> list[str]:
    """A DM mentions the other user when listed or named with ``@`` (no roster to search)."""
    if peer_id in explicit:
        return [peer_id]
    named = peer_name is not None and peer_name.lower() in mention_words(text)
    return [peer_id] if named else []
