"""Rules for emails and display names (protocol: Identity)."""

from __future__ import annotations

import re

from chat.core.invisible import INVISIBLE, clean_name_chars, has_visible
from chat.errors import ChatError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_HIDDEN = re.compile(rf"[{INVISIBLE}]")  # an email is typed, never decorated
NAME_MAX = 64


def clean_email(raw: object) -> tuple[str, str]:
    """Return ``(email as given but trimmed, normalised key)``; emails compare ignoring case."""
    if not isinstance(raw, str):
        raise ChatError("invalid_email", "email must be a string")
    email = raw.strip()
    hidden = _CONTROL.search(email) or _HIDDEN.search(email)
    if len(email) > 254 or not _EMAIL.fullmatch(email) or hidden:
        raise ChatError("invalid_email", "not a valid email address")
    return email, email.lower()


def clean_name(raw: object) -> str:
    """1-64 characters after trimming, control and invisible characters removed (see
    ``chat/core/invisible.py``: what stays, such as the joiner inside "👩‍💻"); something
    visible must be left."""
    if not isinstance(raw, str):
        raise ChatError("invalid_name", "name must be a string")
    name = clean_name_chars(_CONTROL.sub("", raw)).strip()
    if not has_visible(name):
        raise ChatError("invalid_name", "name must have a visible character")
    if len(name) > NAME_MAX:
        raise ChatError("invalid_name", f"name must be 1 to {NAME_MAX} characters")
    return name


def default_name(email: str) -> str:
    """The part of the email before ``@``, as the contract's default display name."""
    return clean_name(email.split("@", 1)[0][:NAME_MAX])
