"""Read positions, unread and mention counts, read receipts and the receipts setting.

A read position only moves forward and never beyond the room's last seq (``ReadStore``).
When it moved, every socket of the user hears ``read`` on the user's channel (any node); and
when the reader has receipts on, the other members of a DM, or of a room with at most
``receipts_max`` members, hear ``receipt``.  A receipt travels as a control (``controls.py``)
so that each receiving node hands it only to the sockets of users with receipts on: a user
who turned them off neither sends nor sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from chat import channels
from chat.core.connections import Conn
from chat.core.controls import Receipt, SettingsChanged
from chat.core.rooms import Rooms
from chat.errors import ChatError
from chat.models import (
    Envelope,
    Room,
    RoomCounts,
    UserRecord,
    encode_envelope,
    is_dm_room,
    peer_of,
)
from chat.ports import AccountStore, Broker, ReadStore, RoomStore

log = logging.getLogger(__name__)


class Reading:
    def __init__(
        self,
        store: ReadStore,
        rooms: Rooms,
        room_store: RoomStore,
        users: AccountStore,
        broker: Broker,
        *,
        receipts_max: int,
    ) -> None:
        self._store = store
        self._rooms = rooms
        self._room_store = room_store
        self._users = users
        self._broker = broker
        self._receipts_max = receipts_max

    async def read(
        self, user: UserRecord, room_id: object, seq: int, conn: Conn | None = None
    ) -> dict[str, Any]:
        """Move the user's read position in a room of theirs; the room's counts after it."""
        room = await self._rooms.member_of(user.id, room_id, conn)
        outcome, counts, members = await self._store.mark(room.id, user.id, seq)
        if outcome == "beyond":
            raise ChatError("invalid_seq", f"seq is above the room's last seq {counts.last_seq}")
        if outcome == "moved":
            await self._announce(user, room, counts, members)
        return {"id": room.id, "last_seq": counts.last_seq, **counts.wire()}

    async def _announce(
        self, user: UserRecord, room: Room, counts: RoomCounts, members: int
    ) -> None:
        """After the write: the user's sockets everywhere, then the receipt for the others."""
        seen = {"room": room.id, "seq": counts.read_seq, "unread": counts.unread,
                "mentions": counts.mentions}  # fmt: skip
        await self._publish(channels.user_channel(user.id), Envelope("emit", "read", seen))
        if not user.receipts or not self._receipts_allowed(room.id, members):
            return
        receipt = Receipt(room.id, user.id, counts.read_seq)
        if not room.is_dm:
            channel = channels.room_channel(room.id)
        elif (peer := peer_of(room.id, user.id)) != user.id:
            channel = channels.user_channel(peer)
        else:
            return  # a note to oneself has nobody to tell
        await self._publish(channel, Envelope("ctl", receipt.ACTION, receipt))

    async def _publish(self, channel: str, envelope: Envelope) -> None:
        """The position is stored: a shard that fails only costs the live copy (the other
        devices learn the position with their next session or read)."""
        [failed] = await self._broker.publish_each([channel], encode_envelope(envelope))
        if failed is not None:
            log.warning("publish of %s on %s failed: %r", envelope.event, channel, failed)

    def _receipts_allowed(self, room_id: str, members: int) -> bool:
        return is_dm_room(room_id) or members <= self._receipts_max

    async def counts(self, user_id: str, room_ids: Collection[str]) -> dict[str, RoomCounts]:
        return await self._store.counts(user_id, room_ids) if room_ids else {}

    async def with_counts(self, user_id: str, rooms: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Room objects, those of rooms the user belongs to with their counts."""
        mine = await self._room_store.user_rooms(user_id)
        counts = await self.counts(user_id, [r["id"] for r in rooms if r["id"] in mine])
        return [{**r, **counts[r["id"]].wire()} if r["id"] in counts else r for r in rooms]

    # --- receipts setting ------------------------------------------------------------------

    async def set_receipts(self, user: UserRecord, on: bool, sid: str = "") -> dict[str, bool]:
        """Store the setting, then tell every node with sockets of the user (``sid``, the
        socket that asked, is answered by its ack instead)."""
        await self._users.set_receipts(user.id, on)
        changed = SettingsChanged(on, sid)
        await self._publish(
            channels.user_channel(user.id), Envelope("ctl", changed.ACTION, changed)
        )
        return {"receipts": on}

    # --- positions of the other members (members, history) ------------------------------------

    # The caller is a member of the room (checked by the caller: a reader of a public room
    # who is not one sees no positions).

    async def receipts(self, user: UserRecord, room_id: str) -> dict[str, int]:
        """``{user id: read_seq}`` of the room's other members with receipts on, where the
        caller has them on and the room is within the size limit; else empty."""
        others = await self._others(user, room_id)
        return await self._store.positions(room_id, others) if others else {}

    async def member_positions(
        self, user: UserRecord, room_id: str, rows: list[dict[str, Any]], count: int
    ) -> list[dict[str, Any]]:
        """Member rows, each with ``read_seq`` under the same conditions as ``receipts``."""
        if not user.receipts or not self._receipts_allowed(room_id, count) or not rows:
            return rows
        records = await self._users.users(r["id"] for r in rows)
        shown = [u for u, record in records.items() if record.receipts]
        found = await self._store.positions(room_id, shown)
        return [{**r, "read_seq": found[r["id"]]} if r["id"] in found else r for r in rows]

    async def _others(self, user: UserRecord, room_id: str) -> list[str]:
        if not user.receipts:
            return []
        rows, count = await self._room_store.members_page(room_id, 0, self._receipts_max + 1)
        if not self._receipts_allowed(room_id, count):
            return []
        ids = [r["id"] for r in rows if r["id"] != user.id]
        records = await self._users.users(ids)
        return [u for u, record in records.items() if record.receipts]
