"""Shapes of client payloads, checked before any work is done.

A payload of the wrong shape is answered with ``invalid_request`` naming the offending field
(msgspec's messages, e.g. "Expected `str`, got `int` - at `$.to`").
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from chat.errors import invalid_request

T = TypeVar("T")

# Ids are server-made and URL-safe; the pattern also keeps odd strings (lone surrogates,
# separators) out of channel names and keys.
UserId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# Long enough for any configured limit; the text rules check the real one after trimming.
Text = Annotated[str, msgspec.Meta(max_length=100_000)]


class DmIn(msgspec.Struct, frozen=True):
    to: UserId
    text: Text
    cid: ClientId | None = None


def parse(payload: Any, shape: type[T]) -> T:
    try:
        return msgspec.convert(payload, shape, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None
