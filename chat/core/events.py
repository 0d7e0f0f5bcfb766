"""The client events of the protocol, independent of Socket.IO.

Each handler takes the calling socket's ``Conn`` and the payload object and returns the ack's
fields besides ``ok``; it raises ``ChatError`` for anything the client should be told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from chat.core.changes import Changes
from chat.core.connections import Conn
from chat.core.member_presence import MemberPresence
from chat.core.messaging import Messaging
from chat.core.moderation import Moderation
from chat.core.payloads import (
    BanIn,
    BlockIn,
    BlocksIn,
    DeleteIn,
    DmIn,
    EditIn,
    HistoryIn,
    InviteIn,
    JoinIn,
    MembersIn,
    ModerateIn,
    MuteIn,
    ReactIn,
    ReadIn,
    RenameIn,
    RoleIn,
    RoomIn,
    RoomSettingsIn,
    SearchIn,
    SendIn,
    SettingsIn,
    SyncIn,
    UsersIn,
    parse,
)
from chat.core.people import People
from chat.core.reading import Reading
from chat.core.recovery import Recovery
from chat.core.renaming import Renaming
from chat.core.rooms import Rooms
from chat.models import to_wire

Handler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any]]]


class ClientEvents:
    def __init__(
        self,
        messaging: Messaging,
        rooms: Rooms,
        recovery: Recovery,
        member_presence: MemberPresence,
        renaming: Renaming,
        changes: Changes,
        *,
        reading: Reading | None = None,
        moderation: Moderation | None = None,
        people: People | None = None,
    ) -> None:
        self._moderation = moderation
        self._people = people
        self._reading = reading
        self._messaging = messaging
        self._rooms = rooms
        self._recovery = recovery
        self._member_presence = member_presence
        self._renaming = renaming
        self._changes = changes

    def events(self) -> dict[str, Handler]:
        return {
            "send": self.send,
            "dm": self.dm,
            "join": self.join,
            "leave": self.leave,
            "invite": self.invite,
            "history": self.history,
            "sync": self.sync,
            "online": self.online,
            "watch": self.watch,
            "unwatch": self.unwatch,
            "members": self.members,
            "rename": self.rename,
            "typing": self.typing,
            "read": self.read,
            "settings": self.settings,
            "edit": self.edit,
            "delete": self.delete,
            "react": self.react,
            "kick": self.kick,
            "ban": self.ban,
            "unban": self.unban,
            "mute": self.mute,
            "unmute": self.unmute,
            "role": self.role,
            "transfer": self.transfer,
            "room_settings": self.room_settings,
            "block": self.block,
            "unblock": self.unblock,
            "blocks": self.blocks,
            "users": self.users,
        }

    async def send(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, SendIn)
        message = await self._messaging.send(
            conn.user, req.room, req.text, req.cid, conn, req.mentions
        )
        return {"message": to_wire(message)}

    async def dm(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, DmIn)
        message = await self._messaging.dm(conn.user, req.to, req.text, req.cid, conn, req.mentions)
        return {"message": to_wire(message)}

    async def join(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, JoinIn)
        room, pointer = await self._rooms.join(conn, req.room)
        if req.since is None:
            # Nothing asked for: tell the client whether the room has messages it lacks.
            missed: dict[str, Any] = {"messages": [], "has_more": pointer > 0}
        else:
            missed = await self._recovery.missed(room.id, req.since, pointer, conn.user.id)
        counts = await self._counts(conn, room.id)
        roles = self._rooms.roles
        role = None if roles is None else await roles.role(conn.user.id, room)
        name = await self._rooms.shown_name(room, conn.user.id)
        return {
            "room": {**room.wire(pointer, name, role), **counts},
            "missed": missed["messages"],
            "has_more": missed["has_more"],
        }

    async def leave(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        await self._rooms.leave(conn, parse(payload, RoomIn).room)
        return {}

    async def invite(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, InviteIn)
        await self._rooms.invite(conn, req.room, req.user)
        return {}

    async def history(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, HistoryIn)
        page = await self._recovery.page(
            conn.user.id, req.room, before=req.before, after=req.after, limit=req.limit, conn=conn
        )
        if self._reading is not None and req.room in conn.rooms:
            receipts = await self._reading.receipts(conn.user, req.room)
            if receipts:
                page["receipts"] = receipts
        return page

    async def sync(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, SyncIn)
        return {"rooms": await self._recovery.sync(conn, req.rooms)}

    async def online(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return {"online": await self._member_presence.online(parse(payload, UsersIn).users)}

    async def watch(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return {"online": await self._member_presence.watch(conn, parse(payload, UsersIn).users)}

    async def unwatch(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        await self._member_presence.unwatch(conn, parse(payload, UsersIn).users)
        return {}

    async def members(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, MembersIn)
        answer = await self._member_presence.members(conn, req.room, req.offset, req.limit)
        if self._reading is not None and req.room in conn.rooms:
            answer["members"] = await self._reading.member_positions(
                conn.user, req.room, answer["members"], answer["count"]
            )
        return answer

    async def rename(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        user = await self._renaming.rename(conn.user.id, parse(payload, RenameIn).name)
        return {"user": user.public()}

    async def typing(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return {"sent": await self._rooms.typing(conn, parse(payload, RoomIn).room)}

    async def read(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, ReadIn)
        return {"room": await self._reader.read(conn.user, req.room, req.seq, conn)}

    async def settings(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, SettingsIn)
        if req.receipts is None:
            return {"settings": {"receipts": conn.user.receipts}}
        # This socket's own view changes at once; the others' by the control.
        conn.user = msgspec.structs.replace(conn.user, receipts=req.receipts)
        return {"settings": await self._reader.set_receipts(conn.user, req.receipts, conn.sid)}

    @property
    def _reader(self) -> Reading:
        if self._reading is None:
            raise RuntimeError("ClientEvents was built without reading")
        return self._reading

    async def _counts(self, conn: Conn, room_id: str) -> dict[str, Any]:
        if self._reading is None:
            return {}
        found = await self._reading.counts(conn.user.id, [room_id])
        return found[room_id].wire() if room_id in found else {}

    async def edit(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, EditIn)
        entry = await self._changes.edit(conn.user, req.room, req.id, req.text, req.cid, conn)
        return {"message": to_wire(entry)}

    async def delete(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, DeleteIn)
        entry = await self._changes.delete(conn.user, req.room, req.id, req.cid, conn)
        return {"message": to_wire(entry)}

    async def react(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, ReactIn)
        entry = await self._changes.react(
            conn.user, req.room, req.id, req.emoji, req.on, req.cid, conn
        )
        return {"message": None if entry is None else to_wire(entry)}

    # --- moderation (chat/core/moderation.py) ------------------------------------------------

    @property
    def _moderator(self) -> Moderation:
        if self._moderation is None:
            raise RuntimeError("ClientEvents was built without moderation")
        return self._moderation

    async def _act(self, conn: Conn, action: str, req: Any, **kw: Any) -> dict[str, Any]:
        entry = await self._moderator.act(conn.user, action, req.room, req.user, **kw)
        return {"message": None if entry is None else to_wire(entry)}

    async def kick(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._act(conn, "kick", parse(payload, ModerateIn))

    async def ban(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, BanIn)
        return await self._act(conn, "ban", req, duration_s=req.duration_s)

    async def unban(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._act(conn, "unban", parse(payload, ModerateIn))

    async def mute(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, MuteIn)
        return await self._act(conn, "mute", req, duration_s=req.duration_s)

    async def unmute(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._act(conn, "unmute", parse(payload, ModerateIn))

    async def role(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, RoleIn)
        return await self._act(conn, "role", req, role=req.role)

    async def transfer(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._act(conn, "transfer", parse(payload, ModerateIn))

    async def room_settings(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, RoomSettingsIn)
        room = await self._moderator.settings(conn.user, req.room, req.managed, req.member_limit)
        return {"room": room}

    @property
    def _persons(self) -> People:
        if self._people is None:
            raise RuntimeError("ClientEvents was built without people")
        return self._people

    async def block(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        await self._persons.block(conn.user.id, parse(payload, BlockIn).user)
        return {}

    async def unblock(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        await self._persons.unblock(conn.user.id, parse(payload, BlockIn).user)
        return {}

    async def blocks(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        parse(payload, BlocksIn)
        return {"users": await self._persons.blocks(conn.user.id)}

    async def users(self, conn: Conn, payload: dict[str, Any]) -> dict[str, Any]:
        req = parse(payload, SearchIn)
        return await self._persons.search(req.prefix, req.offset, req.limit)
