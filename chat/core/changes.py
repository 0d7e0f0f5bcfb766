"""Edits, deletes and reactions: changes of a message, appended to the room's stream as
entries of their own (own seq, ``kind``, ``target``), published like messages.

Bad input is refused before anything is stored: the text rules of ``send``, one Unicode emoji
(the ``emoji`` library's list, pinned in setup.cfg), membership read from the store of record,
an id that names a message (``"<seq>.<random>"``).  The rules on the target (author, deleted,
edit window, reaction bounds) are checked by the store in the same atomic step that appends
the change, so two nodes racing on one message cannot both pass a bound.  The rate limit of
``send`` applies (``limiter.SHARED_ROWS``).
"""

from __future__ import annotations

import secrets

import emoji as emoji_lib

from chat.core.connections import Conn
from chat.core.messaging import Messaging
from chat.core.roles import MODERATORS, OWNER, RoomRoles
from chat.core.rooms import Rooms
from chat.core.text import clean_text
from chat.errors import forbidden, refusal
from chat.models import Message, Room, UserRecord, message_seq
from chat.ports import ChangeRequest, MessageChanges

#: Distinct emoji on one message; reactions of one user on one message.
MAX_EMOJI = 20
MAX_PER_USER = 10


def check_emoji(value: object) -> str:
    """One Unicode emoji (a sequence such as 👩‍💻 or 👍🏽 counts as one), or ``invalid_emoji``."""
    if not isinstance(value, str) or not emoji_lib.is_emoji(value):
        raise refusal("invalid_emoji")
    return value


class Changes:
    def __init__(
        self,
        store: MessageChanges,
        rooms: Rooms,
        messaging: Messaging,
        *,
        text_max: int,
        edit_window_s: int,
        roles: RoomRoles | None = None,
    ) -> None:
        self._roles = roles
        self._store = store
        self._rooms = rooms
        self._messaging = messaging
        self._text_max = text_max
        self._edit_window_ms = edit_window_s * 1000

    async def edit(
        self, user: UserRecord, room_id: object, message_id: str, text: object,
        cid: str | None, conn: Conn | None = None,
    ) -> Message:  # fmt: skip
        cleaned = clean_text(text, self._text_max)
        found = await self._apply(user, room_id, message_id, "edit", cid, conn, text=cleaned)
        assert found is not None  # an edit always changes something or is refused
        return found

    async def delete(
        self, user: UserRecord, room_id: object, message_id: str, cid: str | None,
        conn: Conn | None = None,
    ) -> Message:  # fmt: skip
        found = await self._apply(user, room_id, message_id, "delete", cid, conn)
        assert found is not None
        return found

    async def react(
        self, user: UserRecord, room_id: object, message_id: str, emoji: object, on: bool,
        cid: str | None, conn: Conn | None = None,
    ) -> Message | None:  # fmt: skip
        """The react entry, or None when the reaction was already on (off): nothing stored,
        nothing published."""
        checked = check_emoji(emoji)
        return await self._apply(
            user, room_id, message_id, "react", cid, conn, emoji=checked, on=on
        )

    async def _apply(
        self, user: UserRecord, room_id: object, message_id: str, kind: str, cid: str | None,
        conn: Conn | None, *, text: str | None = None, emoji: str | None = None, on: bool = True,
    ) -> Message | None:  # fmt: skip
        if kind == "delete":
            room, moderator = await self._deleter(user, room_id, conn)
        else:  # a muted member can neither edit nor react
            room, moderator = await self._rooms.sender_of(user.id, room_id, conn), False
        target_seq = message_seq(message_id)
        if target_seq is None:
            raise refusal("no_message")
        # Changes share the idempotency records of sends: the kind in the token keeps a cid
        # reused for another kind of request from answering that request's result.
        token = f"{kind}:{cid}" if cid is not None else secrets.token_urlsafe(12)
        req = ChangeRequest(
            kind, room.id, message_id, target_seq, user.ref, secrets.token_urlsafe(12), token,
            cid=cid, text=text, emoji=emoji, on=on, edit_window_ms=self._edit_window_ms,
            max_emoji=MAX_EMOJI, max_per_user=MAX_PER_USER, moderator=moderator,
        )  # fmt: skip
        entry, _ = await self._store.change(req)
        if entry is not None:
            # Published again on a retry (as sends are): receivers drop a seq they delivered.
            await self._messaging.publish(entry)
        return entry

    async def _deleter(
        self, user: UserRecord, room_id: object, conn: Conn | None
    ) -> tuple[Room, bool]:
        """The room, and whether the user moderates it (an admin or owner deletes any
        message; a service admin, member or not)."""
        if self._roles is None:
            return await self._rooms.member_of(user.id, room_id, conn), False
        room, member = await self._rooms.access(user.id, room_id, conn)
        role = await self._roles.role(user.id, room)
        if not member and role != OWNER:
            raise forbidden("join the room first" if not room.private else "not a member")
        return room, role in MODERATORS
