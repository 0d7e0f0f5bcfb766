"""Account deletion (``DELETE /api/me`` with the password; ``chat users delete`` without), and
the read paths' neutral name for deleted users.

The order is chosen so that nothing can sign the user in again half-way:

1. ``PeopleStore.forget``: the user is marked deleted (read paths show ``DELETED_NAME`` from
   then on), the login record goes (no new login; the email is free), then the user record
   (no handshake or request gets past ``Accounts.me`` any more), the name index entry and
   the blocks; then the gate of each of the user's DMs closes (new DMs are refused by the
   append itself, ``no_user``);
2. every sign-in ends and the generation rises (no refresh, no token issued before), and a
   ``revoke`` on the user's channel closes their sockets on every node (``session_end``
   ``token_revoked``); presence follows the closed sockets;
3. the user leaves every room (the room list is read before step 1 and kept): the members
   get ``left`` as for a leave; the lobby's member list drops them too.  Where the user was
   the owner, the room goes first to an admin, else to another member (online ones first,
   then by name: the members list's order), as a ``transfer`` entry from the deleted user:
   a room with members never loses its owner (an owner who leaves must transfer too).

Every step is idempotent: an interrupted deletion is finished by ``chat users delete`` again
(by id: the user is known as deleted even without a record).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Sequence

import msgspec

from chat.core.accounts import Accounts, wrong_credentials
from chat.core.connections import room_channel
from chat.core.controls import Revoke, control, room_notice
from chat.core.messaging import publish_message
from chat.core.people import DELETED_NAME
from chat.core.roles import ADMIN, OWNER, effective_role
from chat.errors import ChatError, not_found
from chat.models import (
    Envelope,
    Message,
    UserRecord,
    UserRef,
    encode_envelope,
    is_dm_room,
    is_user_id,
)
from chat.ports import (
    AccountStore,
    Broker,
    History,
    ModerationRequest,
    PeopleStore,
    RoleStore,
    RoomStore,
    SessionStore,
)

log = logging.getLogger(__name__)

LOBBY = "lobby"
#: Members looked at for a new owner when the room has no admin (the first page of the list).
SUCCESSORS = 100


class AccountDeletion:
    def __init__(
        self,
        accounts: Accounts | None,
        users: AccountStore,
        people: PeopleStore,
        sessions: SessionStore,
        rooms: RoomStore,
        broker: Broker,
        roles: RoleStore,
    ) -> None:
        """``accounts``: checks the password of ``delete_own`` (None: operator use only)."""
        self._accounts = accounts
        self._users = users
        self._people = people
        self._sessions = sessions
        self._rooms = rooms
        self._broker = broker
        self._roles = roles

    async def delete_own(
        self, user_id: str, password: object, client: str, device: object = None
    ) -> None:
        """The user deletes their own account: the password is checked as a login checks it
        (the same throttles and cool-downs, ``invalid_credentials`` when wrong)."""
        if self._accounts is None:
            raise RuntimeError("AccountDeletion was built without accounts")
        user = await self._accounts.me(user_id)
        checked = await self._accounts.login(user.email, password, client, device=device)
        if checked.id != user.id:  # the email moved to another account meanwhile
            raise wrong_credentials()
        await self.delete(user)

    async def delete(self, user: UserRecord) -> None:
        await self._people.forget(user, user.email.strip().lower())
        await self._people.close_dms(user.id)
        await self._end_sessions(user.id)
        # Read last: a join from one of the user's sockets that was still open while the
        # deletion began is in the list by now (read first, it stayed a member for good).
        await self._leave_rooms(user, await self._rooms.listed_rooms(user.id))

    async def finish(self, user_id: str) -> bool:
        """Finish an interrupted deletion of a user whose record is gone already: False when
        the user was never deleted."""
        if not await self._people.deleted([user_id]):
            return False
        await self._people.close_dms(user_id)
        await self._end_sessions(user_id)
        rooms = await self._rooms.listed_rooms(user_id)
        await self._leave_rooms(UserRecord(user_id, "", DELETED_NAME), rooms)
        return True

    async def find(self, who: str) -> UserRecord:
        """The user an operator named, by id or by email."""
        if "@" in who:
            account = await self._users.account(who.strip().lower())
            user = await self._users.user(account.user_id) if account is not None else None
        else:
            user = await self._users.user(who) if is_user_id(who) else None
        if user is None:
            raise not_found("no_user", "no such user")
        return user

    async def _end_sessions(self, user_id: str) -> None:
        generation = await self._sessions.end_all(user_id)
        try:
            await self._broker.publish(*control(user_id, Revoke(generation=generation)))
        except Exception as exc:
            # The deletion is done and must be answered as done; the broker publishes what
            # failed again once the shard is back (its backlog), closing the sockets then.
            log.warning("revoke of deleted user %s not published yet: %r", user_id, exc)

    async def _leave_rooms(self, user: UserRecord, rooms: Collection[str]) -> None:
        shown = UserRecord(user.id, "", DELETED_NAME)
        for room_id in sorted(rooms):
            if is_dm_room(room_id):
                continue  # a DM is its two users' for good: its history stays the partner's
            if room_id != LOBBY:
                await self._pass_ownership(room_id, shown)
            removed = await self._rooms.remove_member(room_id, user.id)
            channel = room_channel(room_id)
            # No ``room_removed`` control: the user's sockets are closing (step 2).
            if channel is not None and (removed or room_id == LOBBY):
                notice = room_notice(room_id, shown, joined=False)
                left = Envelope("emit", "left", notice.notice(), skip_user=user.id)
                # Never raises: a failed one is published again by the broker (its backlog).
                await self._broker.publish_each([channel], encode_envelope(left))

    async def _pass_ownership(self, room_id: str, user: UserRecord) -> None:
        """Transfer the room from ``user`` if they own it: to an admin, else to a member.  A
        candidate who left or was deleted meanwhile is refused by the transfer itself (checked
        with the roles and the members, atomically), and the next one is asked."""
        room = await self._rooms.get(room_id)
        if room is None:
            return
        stored = (await self._roles.roles([room_id])).get(room_id, {})
        if effective_role(stored, room, user.id) != OWNER:
            return
        page, _ = await self._rooms.members_page(room_id, 0, SUCCESSORS)
        listed = [m["id"] for m in page if m["id"] != user.id]
        place = {u: i for i, u in enumerate(listed)}
        admins = [u for u, r in stored.items() if r == ADMIN and u != user.id]
        admins.sort(key=lambda u: (place.get(u, len(place)), u))
        for candidate in dict.fromkeys([*admins, *listed]):
            target = await self._users.user(candidate)
            if target is None:
                continue
            request = ModerationRequest(
                "transfer", room_id, user.ref, target.ref, secrets.token_urlsafe(12)
            )
            try:
                entry = await self._roles.moderate(request)
            except ChatError as refused:
                if refused.status >= 500:  # the store failed: no use asking the next one
                    raise
                continue
            if entry is not None:
                await publish_message(self._broker, entry)
            return


class DeletedNames:
    """The history as read paths show it: a deleted user's entries carry ``DELETED_NAME``.
    One more read per page (the page's distinct senders, one command)."""

    def __init__(self, history: History, people: PeopleStore) -> None:
        self._history = history
        self._people = people
        self.append = history.append
        self.last_seq = history.last_seq
        self.last_seqs = history.last_seqs

    async def page(
        self,
        room: str,
        *,
        before: int | None,
        after: int | None,
        limit: int,
        viewer: str | None = None,
    ) -> tuple[list[Message], bool]:
        messages, has_more = await self._history.page(
            room, before=before, after=after, limit=limit, viewer=viewer
        )
        return await self._renamed(messages), has_more

    async def between(
        self, room: str, after: int, upto: int, limit: int, viewer: str | None = None
    ) -> list[Message]:
        return await self._renamed(await self._history.between(room, after, upto, limit, viewer))

    async def _renamed(self, messages: Sequence[Message]) -> list[Message]:
        deleted = await self._people.deleted({m.sender.id for m in messages})
        if not deleted:
            return list(messages)
        return [
            msgspec.structs.replace(m, sender=UserRef(m.sender.id, DELETED_NAME))
            if m.sender.id in deleted
            else m
            for m in messages
        ]
