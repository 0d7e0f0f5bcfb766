"""``LocalDelivery`` in memory: what the Socket.IO adapter (``chat/adapters/sio.py``) does with
local rooms, recording what each socket received as the client would decode it."""

from __future__ import annotations

from typing import Any

from chat import channels
from chat.models import decode_json, encode_json


class MemoryDelivery:
    def __init__(self) -> None:
        self.rooms: dict[str, set[str]] = {}
        self.received: dict[str, list[tuple[str, Any]]] = {}
        self.disconnected: list[tuple[str, str]] = []  # (sid, reason)

    def events(self, sid: str, name: str | None = None) -> list[Any]:
        """What ``sid`` received: ``(event, data)`` pairs, or the data of events ``name``."""
        got = self.received.get(sid, [])
        return list(got) if name is None else [data for event, data in got if event == name]

    async def emit(
        self, local_room: str, event: str, data: Any, skip_user: str | None = None
    ) -> None:
        await self.emit_raw(local_room, event, encode_json(data), skip_user)

    async def emit_raw(
        self, local_room: str, event: str, raw: bytes, skip_user: str | None = None
    ) -> None:
        skip = self.rooms.get(channels.user_sio_room(skip_user), set()) if skip_user else set()
        for sid in sorted(self.rooms.get(local_room, set()) - skip):
            self.received.setdefault(sid, []).append((event, decode_json(raw)))

    async def emit_to(self, sid: str, event: str, data: Any) -> None:
        self.received.setdefault(sid, []).append((event, decode_json(encode_json(data))))

    def sids(self, local_room: str) -> list[str]:
        return sorted(self.rooms.get(local_room, set()))

    def enter(self, sid: str, local_room: str) -> None:
        self.rooms.setdefault(local_room, set()).add(sid)

    def leave(self, sid: str, local_room: str) -> None:
        self.rooms.get(local_room, set()).discard(sid)

    async def disconnect(self, local_room: str, reason: str) -> None:
        for sid in sorted(self.rooms.get(local_room, set())):
            self.disconnected.append((sid, reason))
