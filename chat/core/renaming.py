"""Renaming: store the new name, then tell everyone who shows it.

Later messages carry the new name (each node updates its sockets of the user); ``user``
events reach the user's own sockets, the members of the user's rooms, the user's watchers and
the user's DM partners.
"""

from __future__ import annotations

import asyncio

from chat import channels
from chat.core.accounts import Accounts
from chat.core.controls import Renamed, control
from chat.models import Envelope, UserRecord, encode_envelope, is_dm_room, peer_of
from chat.ports import Broker, RoomStore


class Renaming:
    def __init__(self, accounts: Accounts, rooms: RoomStore, broker: Broker) -> None:
        self._accounts = accounts
        self._rooms = rooms
        self._broker = broker

    async def rename(self, user_id: str, name: object) -> UserRecord:
        user = await self._accounts.rename(user_id, name)
        event = user.public()
        shown = encode_envelope(Envelope("emit", "user", event, skip_user=user.id))
        targets = [channels.presence_channel(user.id)]
        for room_id in await self._rooms.user_rooms(user.id):
            if is_dm_room(room_id):
                peer = peer_of(room_id, user.id)
                if peer != user.id:
                    targets.append(channels.user_channel(peer))
            else:
                targets.append(channels.room_channel(room_id))
        await self._broker.publish(*control(user.id, Renamed(user.id, user.name)))
        await asyncio.gather(*(self._broker.publish(ch, shown) for ch in targets))
        return user
