"""Sending messages: validate, check access, store durably, then publish (the sender's rate
limit was spent before the handler ran: ``chat/core/limiter.py``).

The order matters: a message is published (and acknowledged) only after the history cluster
stored it, with a replica's acknowledgement where there are replicas.  A retry with the same
``cid`` returns the stored message and is published again, which is harmless: receivers drop
a ``seq`` they already delivered, and it covers a first attempt that stored but never published.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from chat import channels
from chat.core.connections import Conn
from chat.core.mentions import dm_mentions, mention_words
from chat.core.rooms import Rooms
from chat.core.text import clean_text
from chat.errors import not_found
from chat.models import (
    Envelope,
    Message,
    UserRecord,
    dm_members,
    dm_room_id,
    encode_envelope,
    is_dm_room,
    peer_of,
)
from chat.ports import AccountStore, Broker, History, RoomStore

log = logging.getLogger(__name__)

KNOWN_MAX = 100_000


class Messaging:
    def __init__(
        self,
        broker: Broker,
        history: History,
        rooms: Rooms,
        room_store: RoomStore,
        users: AccountStore,
        *,
        text_max: int,
        observe_write: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        #: Takes each durable append's latency in seconds (incl. the replica WAIT).
        self._observe_write = observe_write
        self._broker = broker
        self._history = history
        self._rooms = rooms
        self._room_store = room_store
        self._users = users
        self._text_max = text_max
        self.sent = 0
        #: DM rooms this node listed for both users: once per node, not per message.
        self._known_dms: OrderedDict[str, None] = OrderedDict()

    async def send(
        self,
        sender: UserRecord,
        room_id: object,
        text: object,
        cid: str | None,
        conn: Conn | None = None,
        mentions: Sequence[str] = (),
    ) -> Message:
        """Store a message in a room the sender belongs to, then publish it.  ``mentions``:
        user ids (the shape checked by the payload); members among them are mentioned."""
        text = clean_text(text, self._text_max)
        room = await self._rooms.sender_of(sender.id, room_id, conn)
        if room.is_dm:
            return await self._dm_message(sender, room.id, text, cid, conn, mentions)
        return await self._store_and_publish(sender, room.id, text, cid, mentions)

    async def dm(
        self,
        sender: UserRecord,
        to: str,
        text: object,
        cid: str | None,
        conn: Conn | None = None,
        mentions: Sequence[str] = (),
    ) -> Message:
        """A direct message: the DM room of the two users is made on first use."""
        text = clean_text(text, self._text_max)
        if not await self._rooms.users_exist([to]):
            raise not_found("no_user", "no such user")
        room_id = dm_room_id(sender.id, to)
        return await self._dm_message(sender, room_id, text, cid, conn, mentions)

    async def _dm_message(
        self,
        sender: UserRecord,
        room_id: str,
        text: str,
        cid: str | None,
        conn: Conn | None,
        mentions: Sequence[str],
    ) -> Message:
        """Blocks and deleted accounts are refused by the append itself (the DM's gate, read
        in the same script), so a DM costs one round trip.  The conversation's first message
        through this node lists the room for both users first, each listing refused in the
        same step when its user is deleted (a deleted account that never had this DM has no
        gate) or blocked the other (nothing shows up in a blocker's list).  Only this node's
        own record of having listed it skips that: whatever the socket read before (an empty
        ``history``) must not make the first message look like a later one, or the DM is
        listed for nobody."""
        mentions = await self._dm_mentions(sender, room_id, text, mentions)
        if room_id in self._known_dms:
            return await self._store_and_publish(sender, room_id, text, cid, mentions)
        await self._room_store.ensure_dm(room_id)
        message = await self._store(sender, room_id, text, cid, mentions, dm=True)
        await publish_message(self._broker, message)
        _remember(self._known_dms, room_id)
        return message

    async def _dm_mentions(
        self, sender: UserRecord, room_id: str, text: str, explicit: Sequence[str]
    ) -> list[str]:
        """The other user, when mentioned (a DM has no roster for the append to search)."""
        peer = peer_of(room_id, sender.id)
        if peer == sender.id or not (explicit or "@" in text):
            return []
        name = None if peer in explicit else getattr(await self._users.user(peer), "name", None)
        return dm_mentions(peer, name, explicit, text)

    async def _store_and_publish(
        self, sender: UserRecord, room_id: str, text: str, cid: str | None, mentions: Sequence[str]
    ) -> Message:
        message = await self._store(sender, room_id, text, cid, mentions, dm=is_dm_room(room_id))
        await publish_message(self._broker, message)
        return message

    async def _store(
        self,
        sender: UserRecord,
        room_id: str,
        text: str,
        cid: str | None,
        mentions: Sequence[str],
        *,
        dm: bool,
    ) -> Message:
        # Without a client id, a server-made token still makes the cluster retries of this
        # one request idempotent.
        token = cid if cid is not None else _token()
        started = time.perf_counter()
        message, created = await self._history.append(
            _token(), room_id, sender.ref, text, cid, token,
            mentions=mentions, names=() if dm else mention_words(text),
        )  # fmt: skip
        self._observe_write(time.perf_counter() - started)
        self.sent += created
        return message

    async def publish(self, message: Message) -> None:
        """Publish a stored stream entry where its room's messages go (changes use it)."""
        await publish_message(self._broker, message)


async def publish_message(broker: Broker, message: Message) -> None:
    """Publish a stored stream entry where its room's messages go; never raises."""
    envelope = Envelope("emit", "message", message, room=message.room, seq=message.seq)
    payload = encode_envelope(envelope)
    for result in await broker.publish_each(_channels(message.room), payload):
        if result is not None:
            # Stored, so not lost: receivers fill the gap from history, clients by sync.
            log.warning("publish of %s/%s failed: %r", message.room, message.seq, result)


class _RandomPool:
    """Random bytes from one ``os.urandom`` call per 4 KiB: each ``secrets.token_urlsafe`` is a
    ``getrandom`` system call, and a message took two (its id and its retry token)."""

    def __init__(self) -> None:
        self._bytes, self._at = b"", 0

    def token(self) -> str:
        """16 URL-safe characters of 96 random bits (as ``secrets.token_urlsafe(12)``)."""
        if self._at + 12 > len(self._bytes):
            self._bytes, self._at = os.urandom(4092), 0
        self._at += 12
        return base64.urlsafe_b64encode(self._bytes[self._at - 12 : self._at]).decode()


_token = _RandomPool().token


def _remember(cache: OrderedDict[str, None], key: str) -> None:
    cache[key] = None
    if len(cache) > KNOWN_MAX:
        cache.popitem(last=False)


def _channels(room_id: str) -> set[str]:
    """Room messages go to the room's channel; DMs to both users' channels (every device of
    both users, wherever connected).  A set: a note to oneself is published once."""
    if is_dm_room(room_id):
        return {channels.user_channel(user) for user in dm_members(room_id)}
    return {channels.room_channel(room_id)}
