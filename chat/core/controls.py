"""Control messages: what a use case on one node tells every node that follows a user's channel.

They travel as ``Envelope("ctl", ACTION, struct)`` on the user's channel and are never shown
to clients.  Each kind is a typed struct here, next to the one place that produces it
(``control``) and the one place that consumes it (``register``): a receiving node decodes the
struct by its action name, so a malformed control is dropped by the dispatcher, never half-read.

Compatibility: the field names are the JSON that nodes of the previous release send and read
(a rolling update runs both), so renaming a field is a protocol change between nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from chat.channels import channel_entity, user_channel
from chat.models import Envelope, UserRecord, encode_envelope

if TYPE_CHECKING:
    from chat.core.connections import Connections
    from chat.core.inbound import InboundDispatcher


class Control(msgspec.Struct, frozen=True, omit_defaults=True):
    ACTION: ClassVar[str]


class Revoke(Control, frozen=True, omit_defaults=True):
    """A token, a sign-in (``family``) or every token below a ``generation`` ended
    (core/sessions.py); the user's sockets they concern close on every node."""

    ACTION: ClassVar[str] = "revoke"
    jti: str = ""
    family: str = ""
    generation: int | None = None


class UserRef(msgspec.Struct, frozen=True):
    id: str
    name: str

    def wire(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


class RoomAdded(Control, frozen=True):
    """The user became a member of ``room`` (core/rooms.py): their sockets follow it."""

    ACTION: ClassVar[str] = "room_added"
    room: str
    user: UserRef

    def notice(self) -> dict[str, Any]:
        return {"room": self.room, "user": self.user.wire()}


class RoomRemoved(RoomAdded, frozen=True):
    """The user left ``room`` (core/rooms.py): their sockets stop following it."""

    ACTION: ClassVar[str] = "room_removed"


class Renamed(Control, frozen=True):
    """The user's new name (core/renaming.py), for the messages their sockets send next."""

    ACTION: ClassVar[str] = "renamed"
    id: str
    name: str


class Receipt(Control, frozen=True):
    """``user`` read ``room`` up to ``seq`` (core/reading.py), on the room's channel or, in a
    DM, the other user's: each node shows it to the local sockets of the other members whose
    user has receipts on (a control, so that no node delivers it unfiltered)."""

    ACTION: ClassVar[str] = "receipt"
    room: str
    user: str
    seq: int

    def wire(self) -> dict[str, Any]:
        return {"room": self.room, "user": self.user, "seq": self.seq}


class SettingsChanged(Control, frozen=True, omit_defaults=True):
    """The user's receipts setting (core/reading.py): their sockets filter receipts by it and
    are told with ``settings`` (but ``sid``, the socket that changed it: its ack tells it)."""

    ACTION: ClassVar[str] = "settings"
    receipts: bool
    sid: str = ""


def control(user_id: str, message: Control) -> tuple[str, bytes]:
    """The channel and payload that tell every node following ``user_id`` (the producer side)."""
    return user_channel(user_id), encode_envelope(Envelope("ctl", message.ACTION, message))


def room_notice(room_id: str, user: UserRecord, *, joined: bool) -> RoomAdded:
    kind = RoomAdded if joined else RoomRemoved
    return kind(room_id, UserRef(user.id, user.name))


def register(inbound: InboundDispatcher, connections: Connections) -> None:
    """The consumer side: what this node does with each control that reaches it."""

    async def revoke(channel: str, message: Revoke) -> None:
        _, user_id = channel_entity(channel)
        await connections.lifetimes.revoke(connections.local(user_id), message)

    async def room_added(channel: str, message: RoomAdded) -> None:
        await connections.room_added(message.user.id, message.room, message.notice())

    async def room_removed(channel: str, message: RoomRemoved) -> None:
        await connections.room_removed(message.user.id, message.room, message.notice())

    async def renamed(channel: str, message: Renamed) -> None:
        await connections.renamed(message.id, message.name)

    async def receipt(channel: str, message: Receipt) -> None:
        await connections.receipt(channel, message.user, message.wire())

    async def settings(channel: str, message: SettingsChanged) -> None:
        _, user_id = channel_entity(channel)
        await connections.settings_changed(user_id, message.receipts, message.sid)

    inbound.on_control(Receipt, receipt)
    inbound.on_control(SettingsChanged, settings)
    inbound.on_control(Revoke, revoke)
    inbound.on_control(RoomAdded, room_added)
    inbound.on_control(RoomRemoved, room_removed)
    inbound.on_control(Renamed, renamed)
