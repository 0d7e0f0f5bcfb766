"""Moderation and roles: kick, ban, unban, mute, unmute, role changes, ownership transfers,
and the settings of a room (managed, member limit).

Each action is checked and applied by the store in one atomic step that also appends a
``moderation`` entry to the room's stream (own seq, like the changes of messages), which is
then published like a message: members see it live and after ``sync``.  A kick or a ban then
removes the member as a ``leave`` does (``Rooms.expel``): the ``room_removed`` control makes
every node drop the room from the user's sockets and tell them ``left``.

Who may act (checked by the store with the action, so a race cannot pass a rule): admins and
owners kick, ban, unban, mute and unmute; an admin never acts on an owner or another admin;
nobody on themselves or on the owner; only the owner changes roles and transfers the room.
The target must be a member (ban, unban and unmute: need not).  The lobby and DMs have no
moderation (``forbidden``).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from chat import channels
from chat.core.messaging import Messaging
from chat.core.roles import OWNER, RoomRoles, check_limit, unmanaged
from chat.core.rooms import Rooms
from chat.errors import forbidden, moderation_refusal, not_found
from chat.models import Envelope, Message, Room, UserRecord, encode_envelope
from chat.ports import AccountStore, Broker, History, ModerationRequest

log = logging.getLogger(__name__)

ACTIONS = ("kick", "ban", "unban", "mute", "unmute", "role", "transfer")
#: Actions that remove the target from the room.
REMOVING = ("kick", "ban")


class Moderation:
    def __init__(
        self,
        roles: RoomRoles,
        rooms: Rooms,
        messaging: Messaging,
        users: AccountStore,
        history: History,
        broker: Broker,
    ) -> None:
        self._roles = roles
        self._rooms = rooms
        self._messaging = messaging
        self._users = users
        self._history = history
        self._broker = broker

    async def act(
        self, actor: UserRecord, action: str, room_id: object, user_id: str, *,
        duration_s: int | None = None, role: str | None = None,
    ) -> Message | None:  # fmt: skip
        """Apply ``action``; its entry, or None when it changed nothing (an unban of a user
        not banned, a role the user has already)."""
        if action not in ACTIONS:
            raise ValueError(action)
        room, service_admin = await self._room(actor, room_id)
        target = await self._users.user(user_id)
        if target is None:
            raise not_found("no_user", "no such user")
        req = ModerationRequest(
            action, room.id, actor.ref, target.ref, secrets.token_urlsafe(12),
            service_admin=service_admin, duration_ms=(duration_s or 0) * 1000, role=role,
        )  # fmt: skip
        entry = await self._roles.store.moderate(req)
        if entry is None:
            return None
        await self._messaging.publish(entry)  # never raises: stored, so not lost
        if action in REMOVING:  # after the entry: the member's sockets see why they leave
            await self._rooms.expel(room, target)
        return entry

    async def _room(self, actor: UserRecord, room_id: object) -> tuple[Room, bool]:
        """The room, if the actor is a member or a service admin (who acts as an owner of
        every room, member or not); and whether the actor is a service admin."""
        room, member = await self._rooms.access(actor.id, room_id)
        if unmanaged(room):
            raise forbidden("this room has no moderation")
        service_admin = await self._roles.store.service_admin(actor.id)
        if not member and not service_admin:
            raise forbidden("not a member")
        return room, service_admin

    async def settings(
        self, actor: UserRecord, room_id: object, managed: bool | None, member_limit: int | None
    ) -> dict[str, Any]:
        """The owner changes whether the room is managed (which makes it private) and its
        member limit; answers the room as it is now."""
        room, _ = await self._room(actor, room_id)
        if await self._roles.role(actor.id, room) != OWNER:
            raise moderation_refusal("forbidden")
        limit = None if member_limit is None else check_limit(member_limit, self._roles.members_max)
        store = self._rooms.store
        await store.set_settings(room.id, managed, limit)
        now = await store.get(room.id)
        assert now is not None  # rooms are never deleted
        shown = now.wire(await self._history.last_seq(room.id))
        # Every member's socket, the owner's other devices included, sees the room as it is
        # now.  Not a stream entry: a socket that missed it reads the room again on connect.
        # Without ``last_seq``: that is the stream's to tell, in order.
        public = {k: v for k, v in shown.items() if k != "last_seq"}
        update = Envelope("emit", "room_updated", {"room": public})
        try:
            await self._broker.publish(channels.room_channel(room.id), encode_envelope(update))
        except Exception:  # stored already: the answer must say so
            log.warning("room_updated of %s not published", room.id, exc_info=True)
        return {**shown, "role": OWNER}
