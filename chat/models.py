"""Wire objects of the protocol (``../shared/spec/protocol.md``, section Objects).

msgspec Structs: typed, cheap to build, and encoded straight to JSON bytes for the broker.
Leaf module: imports nothing of the project.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

import msgspec


class UserRef(msgspec.Struct, frozen=True):
    """``{id, name}``: how a user appears inside other objects."""

    id: str
    name: str


#: How read paths show a user whose account was deleted (their record is gone).
DELETED_NAME = "Deleted user"


class UserRecord(msgspec.Struct, frozen=True):
    """A stored user.  ``email`` is shown only to the user themselves."""

    id: str
    email: str
    name: str
    created: int = 0
    #: The user's setting: send and see read receipts (``receipt`` events, positions).
    receipts: bool = True
    #: The user of a service token (``chat tokens create``): no email, no password.
    bot: bool = False

    @property
    def ref(self) -> UserRef:
        return UserRef(self.id, self.name)

    def private(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "email": self.email, "name": self.name}
        return {**shown, "bot": True} if self.bot else shown

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "name": self.name}
        return {**shown, "bot": True} if self.bot else shown


class ServiceToken(msgspec.Struct, frozen=True, omit_defaults=True):
    """A service token's record (``chat tokens``): its secret is kept only as ``hash`` (the
    SHA-256 of the secret, hex), dropped when the token is revoked."""

    id: str
    name: str
    #: The token's bot user (``UserRecord.bot``), its own: one bot user per token.
    user: str
    scopes: list[str]
    created: int  # ms since the epoch
    hash: str = ""
    revoked: int = 0  # ms since the epoch; 0: in force

    def listed(self) -> dict[str, Any]:
        """What ``chat tokens list`` shows: never the hash."""
        return {k: v for k, v in msgspec.structs.asdict(self).items() if k != "hash"}


class Account(msgspec.Struct, frozen=True):
    """What login needs, found by email."""

    user_id: str
    password_hash: str


class Message(msgspec.Struct, frozen=True, omit_defaults=True):
    """A stream entry: a plain message (no ``kind``), or a change of one (``kind`` ``edit``,
    ``delete``, ``react``, naming its ``target`` message and ``target_seq``).  Read paths add
    the target's current state to plain messages (``with_state``)."""

    id: str
    room: str
    seq: int
    sender: UserRef = msgspec.field(name="from")
    ts: int
    text: str | None = None  # absent: delete and react entries, deleted messages
    cid: str | None = None
    #: Ids of the room's members the message mentions (explicitly or by ``@name``).
    mentions: list[str] | None = None
    kind: str | None = None
    target: str | None = None
    target_seq: int | None = None
    emoji: str | None = None
    on: bool | None = None
    # Current state, on plain messages in read paths only (never in the stream itself):
    edited_ts: int | None = None
    deleted: bool = False
    reactions: dict[str, int] | None = None
    my_reactions: list[str] | None = None
    #: The seq of the newest change entry reflected in this state: a client that applies the
    #: change entries it receives skips those at or below it (already counted here).
    changed_seq: int | None = None
    #: A delete entry made by a room admin or owner, not by the author.
    by_moderator: bool = False
    #: A moderation entry (``kind`` ``moderation``): ``action`` (kick, ban, unban, mute,
    #: unmute, role, transfer), its target ``user``, ``until`` (ms; ban and mute) and ``role``.
    action: str | None = None
    user: UserRef | None = None
    until: int | None = None
    role: str | None = None


class RoomCounts(msgspec.Struct, frozen=True):
    """A user's reading of one room: the room's last seq, the user's read position, and the
    plain messages of others (``unread``) and mentions of the user after it, each exact up to
    ``COUNT_CAP - 1`` (``COUNT_CAP``: more than that, "99+")."""

    last_seq: int
    read_seq: int
    unread: int
    mentions: int

    def wire(self) -> dict[str, int]:
        return {"read_seq": self.read_seq, "unread": self.unread, "mentions": self.mentions}


#: Unread and mention counts stop here: 100 reads "more than 99".
COUNT_CAP = 100


#: What a deleted message never shows again, in any read path (the fields that exist).
DELETED_HIDES = ("text", "mentions", "edited_ts", "reactions", "my_reactions")


def with_state(message: Message, state: Mapping[str, Any] | None, mine: list[str]) -> Message:
    """``message`` as read paths show it.  ``state`` is the overlay of its target (plain
    message: its own) as the change scripts store it: ``{text?, edited_ts?, deleted?,
    reactions?, v}``; ``mine``: the caller's reactions to it.  A deleted message loses its
    text; so does an edit entry whose target is deleted."""
    if not state:
        return message
    if message.kind is not None:  # a change entry: only a deleted target's text is hidden
        if message.kind == "edit" and state.get("deleted"):
            return msgspec.structs.replace(message, text=None)
        return message
    if state.get("deleted"):
        hidden = {f: None for f in DELETED_HIDES if f in Message.__struct_fields__}
        return msgspec.structs.replace(message, **hidden, deleted=True, changed_seq=state["v"])
    counts = {e: c for e, c in (state.get("reactions") or {}).items() if c > 0}
    return msgspec.structs.replace(
        message,
        text=state.get("text", message.text),
        edited_ts=state.get("edited_ts"),
        reactions=counts or None,
        my_reactions=[e for e in counts if e in mine] or None,
        changed_seq=state["v"],
    )


def message_seq(message_id: str) -> int | None:
    """The seq an id names (``"<seq>.<random>"``); None for anything else (ids stored before
    ids carried their seq, or not an id at all)."""
    head, dot, _ = message_id.partition(".")
    if not dot or not head.isdigit() or head.startswith("0") or len(head) > 18:
        return None
    return int(head)


def dm_room_id(a: str, b: str) -> str:
    """The DM room of two users: ``dm:<a>:<b>`` with the ids sorted, the same from both sides."""
    first, second = sorted((a, b))
    return f"dm:{first}:{second}"


class Room(msgspec.Struct, frozen=True):
    """A stored room.  DM rooms are ``dm:<a>:<b>``; the lobby is public and has everyone.
    A ``managed`` room is private and only its owners and admins add members;
    ``member_limit`` (0: the deployment's bound only) caps its members."""

    id: str
    name: str
    private: bool
    created_by: str = ""
    created: int = 0
    managed: bool = False
    member_limit: int = 0

    @property
    def is_dm(self) -> bool:
        return is_dm_room(self.id)

    def wire(
        self, last_seq: int, name: str | None = None, role: str | None = None
    ) -> dict[str, Any]:
        """The room object; ``role`` is the caller's (``owner``, ``admin``, ``member``)."""
        wire: dict[str, Any] = {
            "id": self.id,
            "name": self.name if name is None else name,
            "private": self.private,
            "last_seq": last_seq,
            "managed": self.managed,
        }
        if self.member_limit:
            wire["member_limit"] = self.member_limit
        if role is not None:
            wire["role"] = role
        return wire


#: User ids (server-made, URL-safe; the pattern also keeps odd strings such as lone surrogates
#: and separators out of keys and channel names).  The one spelling of the rule: payload
#: shapes, refresh tokens and DM room ids use it from here, and a test holds the web client's
#: input pattern and docs/protocol.md to it.
USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_USER_ID = re.compile(USER_ID_PATTERN)
#: Hazard: Python's ``$`` also matches before a final newline (a room "lobby\n" was created,
#: a user "ann\n" looked up): these patterns are only ever matched whole (``fullmatch``), and
#: where a library searches (msgspec's ``pattern``), spelled with ``\Z``.
USER_ID_WHOLE = USER_ID_PATTERN.removesuffix("$") + r"\Z"

#: Ids of rooms users create (DM rooms are ``dm:<a>:<b>``, see ``is_dm_room``): lowercase, so
#: that two rooms never differ by case only.  The one spelling, as for user ids.
ROOM_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ROOM_ID = re.compile(ROOM_ID_PATTERN)


def is_user_id(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and bool(_USER_ID.fullmatch(text))


def is_room_id(text: object) -> TypeGuard[str]:
    """A created room's id (not a DM room's: ``is_dm_room``)."""
    return isinstance(text, str) and bool(_ROOM_ID.fullmatch(text))


def is_dm_room(room_id: str) -> bool:
    """``dm:<a>:<b>`` with two user ids in sorted order (the only spelling of a DM room)."""
    parts = room_id.split(":")
    return (
        len(parts) == 3
        and parts[0] == "dm"
        and all(is_user_id(p) for p in parts[1:])
        and parts[1] <= parts[2]
    )


def dm_members(room_id: str) -> tuple[str, str]:
    _, first, second = room_id.split(":")
    return first, second


def peer_of(dm_room: str, user_id: str) -> str:
    """The other member of a DM room (the user themselves for notes to oneself)."""
    first, second = dm_members(dm_room)
    return second if first == user_id else first


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """What travels on a pub/sub channel between nodes.

    ``kind`` ``"emit"``: deliver Socket.IO event ``event`` with ``data`` to the local sockets
    that follow the channel.  ``kind`` ``"ctl"``: a control message for the nodes themselves
    (``event`` names the action), never shown to clients.
    """

    kind: str
    event: str
    data: Any = None
    #: ``emit`` only: do not deliver to the local sockets of this user.
    skip_user: str | None = None
    #: ``message`` only: the room and seq, so receivers order it without parsing ``data``.
    room: str | None = None
    seq: int | None = None


class Incoming(msgspec.Struct, frozen=True):
    """An ``Envelope`` as a receiving node reads it: ``data`` stays JSON text, forwarded to
    sockets as it is (no decoding and re-encoding on the delivery path)."""

    kind: str
    event: str
    data: msgspec.Raw = msgspec.Raw(b"null")
    skip_user: str | None = None
    room: str | None = None
    seq: int | None = None


class Delivery(NamedTuple):
    """One message of a room's stream, ready for sockets: its JSON text and where it goes."""

    room: str
    seq: int
    raw: bytes


_encoder = msgspec.json.Encoder()
_incoming_decoder = msgspec.json.Decoder(Incoming)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_envelope(payload: bytes) -> Incoming:
    return _incoming_decoder.decode(payload)


def encode_json(obj: Any) -> bytes:
    return _encoder.encode(obj)


def decode_json(raw: str | bytes | msgspec.Raw) -> Any:
    return msgspec.json.decode(raw)


def message_delivery(message: Message) -> Delivery:
    return Delivery(message.room, message.seq, _encoder.encode(message))


def to_wire(obj: msgspec.Struct) -> Any:
    """Plain dict/list form for Socket.IO acks and events."""
    return msgspec.to_builtins(obj)


# --- the shard set (issue 15) ----------------------------------------------------------------

STEADY, RECEIVE, PUBLISH = "steady", "receive", "publish"
PHASES = (STEADY, RECEIVE, PUBLISH)
MAX_SHARD_WEIGHT = 100  # shardring's bound


@dataclass(frozen=True)
class Layout:
    """The pub/sub shard set in force and, while a change runs, the set it leaves (the phases
    and their invariant: ``chat/adapters/shards/layout.py``)."""

    epoch: int
    #: name -> Redis URL: the set in force, or the one a running change moves to.
    shards: Mapping[str, str]
    #: name -> Redis URL: the set a running change leaves; empty when steady.
    previous: Mapping[str, str] = field(default_factory=dict)
    phase: str = STEADY
    #: name -> ring weight, for the shards whose weight is not 1 (shardring: 1..100).
    weights: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(not 1 <= w <= MAX_SHARD_WEIGHT for w in self.weights.values()):
            raise ValueError(f"a shard's weight is 1..{MAX_SHARD_WEIGHT}")
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}")
        if not self.shards:
            raise ValueError("a layout needs at least one shard")
        if (self.phase == STEADY) != (not self.previous):
            raise ValueError("a previous set exists exactly while a change runs")
        for name in self.shards.keys() & self.previous.keys():
            if self.shards[name] != self.previous[name]:
                raise ValueError(f"shard {name} cannot change its URL during a change")

    @property
    def urls(self) -> dict[str, str]:
        """Every shard a node needs a connection to."""
        return {**self.previous, **self.shards}

    def ring(self, shards: Mapping[str, str]) -> dict[str, int]:
        """``shards`` (this layout's set, or its previous one) as a ring's weighted names."""
        return {name: self.weights.get(name, 1) for name in shards}

    @property
    def step(self) -> tuple[int, str]:
        """What a node acknowledges: the change (epoch) and how far it got (phase)."""
        return self.epoch, self.phase

    def encode(self) -> bytes:
        return msgspec.json.encode(
            {"epoch": self.epoch, "phase": self.phase, "shards": dict(self.shards),
             "previous": dict(self.previous), "weights": dict(self.weights)}
        )  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes | str) -> Layout:
        doc = msgspec.json.decode(raw)
        previous, weights = doc.get("previous") or {}, doc.get("weights") or {}
        return cls(int(doc["epoch"]), doc["shards"], previous, doc["phase"], weights)
