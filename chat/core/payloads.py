"""Shapes of client payloads, checked before any work is done.

A payload of the wrong shape is answered with ``invalid_request`` naming the offending field
(msgspec's messages, e.g. "Expected `str`, got `int` - at `$.to`").  Rules about values
(which rooms exist, text rules) are checked by the use cases with their own error codes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from chat.errors import invalid_request
from chat.models import USER_ID_WHOLE

T = TypeVar("T")

# Ids are server-made and URL-safe; the pattern also keeps odd strings (lone surrogates,
# separators) out of channel names and keys.
UserId = Annotated[str, msgspec.Meta(pattern=USER_ID_WHOLE)]
RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=160)]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
#: A room's seq is a Redis integer (``INCR``): never above 2**63 - 1, and cursors past it
#: would make stream ids Redis refuses (an ``internal`` answer instead of a page).
SEQ_MAX = 2**63 - 1
Seq = Annotated[int, msgspec.Meta(ge=0, le=SEQ_MAX)]
#: Far past any room's size; ``offset + limit`` must stay a Redis integer.
Offset = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]
# Long enough for any configured limit; the text rules check the real one after trimming.
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
#: Users a message mentions explicitly (members among them; the sender never).
Mentions = Annotated[list[UserId], msgspec.Meta(max_length=20)]


class DmIn(msgspec.Struct, frozen=True):
    to: UserId
    text: Text
    cid: ClientId | None = None
    mentions: Mentions = msgspec.field(default_factory=list)


class SendIn(msgspec.Struct, frozen=True):
    room: RoomId
    text: Text
    cid: ClientId | None = None
    mentions: Mentions = msgspec.field(default_factory=list)


class ReadIn(msgspec.Struct, frozen=True):
    room: RoomId
    seq: Seq


class ReadBody(msgspec.Struct, frozen=True):
    """``POST /api/rooms/{id}/read``."""

    seq: Seq


class SettingsIn(msgspec.Struct, frozen=True):
    """``settings`` and ``PATCH /api/me/settings``: what is absent stays as it is."""

    receipts: bool | None = None


class JoinIn(msgspec.Struct, frozen=True):
    room: RoomId
    since: Seq | None = None


class RoomIn(msgspec.Struct, frozen=True):
    room: RoomId


class InviteIn(msgspec.Struct, frozen=True):
    room: RoomId
    user: UserId


class HistoryIn(msgspec.Struct, frozen=True):
    room: RoomId
    before: Seq | None = None
    after: Seq | None = None
    limit: Limit = 50


class UsersIn(msgspec.Struct, frozen=True):
    users: Annotated[list[UserId], msgspec.Meta(max_length=100)]


class MembersIn(msgspec.Struct, frozen=True):
    room: RoomId
    offset: Offset = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 100


class RenameIn(msgspec.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(max_length=1000)]


class SyncIn(msgspec.Struct, frozen=True):
    rooms: Annotated[dict[RoomId, Seq], msgspec.Meta(max_length=500)]


class HistoryQuery(msgspec.Struct, frozen=True):
    """``GET /api/rooms/{id}/messages`` query: strings converted (``strict=False``)."""

    before: Seq | None = None
    after: Seq | None = None
    limit: Limit = 50


class MessageBody(msgspec.Struct, frozen=True):
    text: Text
    cid: ClientId | None = None
    mentions: Mentions = msgspec.field(default_factory=list)


# A message id ("<seq>.<random>"); an unknown one is ``no_message``, not a shape error.
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# One emoji is a few code points (a family with skin tones: about a dozen); the emoji rule
# (``invalid_emoji``) is checked by the use case.
Emoji = Annotated[str, msgspec.Meta(max_length=64)]


class EditIn(msgspec.Struct, frozen=True):
    room: RoomId
    id: MessageId
    text: Text
    cid: ClientId | None = None


class DeleteIn(msgspec.Struct, frozen=True):
    room: RoomId
    id: MessageId
    cid: ClientId | None = None


class ReactIn(msgspec.Struct, frozen=True):
    room: RoomId
    id: MessageId
    emoji: Emoji
    on: bool
    cid: ClientId | None = None


#: Ban and mute durations: a second to ten years.
Duration = Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)]


class ModerateIn(msgspec.Struct, frozen=True):
    """``kick``, ``unban``, ``unmute``, ``transfer``."""

    room: RoomId
    user: UserId


class BanIn(msgspec.Struct, frozen=True):
    room: RoomId
    user: UserId
    duration_s: Duration | None = None  # absent: until unbanned


class MuteIn(msgspec.Struct, frozen=True):
    room: RoomId
    user: UserId
    duration_s: Duration


class RoleIn(msgspec.Struct, frozen=True):
    room: RoomId
    user: UserId
    role: Literal["admin", "member"]


class RoomSettingsIn(msgspec.Struct, frozen=True):
    """``room_settings``: what is absent stays as it is (the member limit's bound is the
    deployment's, checked by the use case)."""

    room: RoomId
    managed: bool | None = None
    member_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None


class BlockIn(msgspec.Struct, frozen=True):
    """``block`` and ``unblock``."""

    user: UserId


class BlocksIn(msgspec.Struct, frozen=True):
    """``blocks``: nothing to say."""


class SearchIn(msgspec.Struct, frozen=True):
    """``users`` and ``GET /api/users`` (a query: ``strict=False``).  The prefix's rules after
    trimming (at least one character) are the use case's."""

    prefix: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 20


class DeleteAccountBody(msgspec.Struct, frozen=True):
    """``DELETE /api/me``: the password, entered again."""

    password: Annotated[str, msgspec.Meta(max_length=10_000)]


def parse(payload: Any, shape: type[T], *, strict: bool = True) -> T:
    """``strict=False`` converts strings to numbers (query strings carry only text)."""
    try:
        return msgspec.convert(payload, shape, strict=strict)
    except msgspec.ValidationError as exc:
        raise invalid_request(str(exc)) from None
