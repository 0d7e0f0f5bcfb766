"""Sending messages: validate, limit, store durably, then publish.

The order matters: a message is published (and acknowledged) only after the history cluster
stored it, with a replica's acknowledgement where there are replicas.  A retry with the same
``cid`` returns the stored message and is published again, which is harmless: receivers drop
a ``seq`` they already delivered, and it covers a first attempt that stored but never published.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable

from chat import keys
from chat.core.text import clean_text
from chat.errors import rate_limited
from chat.models import Envelope, Message, UserRef, dm_room_id, encode_envelope, to_wire
from chat.ports import Broker, History, Limits

log = logging.getLogger(__name__)


class Messaging:
    def __init__(
        self,
        broker: Broker,
        history: History,
        limits: Limits,
        *,
        text_max: int,
        send_rate: float,
        send_burst: int,
    ) -> None:
        self._broker = broker
        self._history = history
        self._limits = limits
        self._text_max = text_max
        self._rate = send_rate
        self._burst = send_burst

    async def send(self, sender: UserRef, room: str, text: object, cid: str | None) -> Message:
        """Store a room message and publish it on the room's channel."""
        message = await self._store(sender, room, text, cid)
        await self._publish(message, [keys.room_channel(room)])
        return message

    async def send_dm(self, sender: UserRef, to: str, text: object, cid: str | None) -> Message:
        """Store a direct message and publish it to both users' channels, so every device
        of both users gets it, wherever it is connected."""
        message = await self._store(sender, dm_room_id(sender.id, to), text, cid)
        # A set: a note to oneself is published once.
        await self._publish(message, {keys.user_channel(sender.id), keys.user_channel(to)})
        return message

    async def _store(self, sender: UserRef, room: str, text: object, cid: str | None) -> Message:
        text = clean_text(text, self._text_max)
        wait = await self._limits.take("send", sender.id, self._rate, self._burst)
        if wait:
            raise rate_limited(wait)
        # Without a client id, a server-made token still makes the cluster retries of this
        # one request idempotent.
        token = cid if cid is not None else secrets.token_urlsafe(12)
        message, _ = await self._history.append(
            secrets.token_urlsafe(12), room, sender, text, cid, token
        )
        return message

    async def _publish(self, message: Message, channels: Iterable[str]) -> None:
        payload = encode_envelope(Envelope("emit", "message", to_wire(message)))
        results = await asyncio.gather(
            *(self._broker.publish(ch, payload) for ch in channels),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                # Stored, so not lost: receivers fill the gap from history, clients by sync.
                log.warning("publish of %s/%s failed: %r", message.room, message.seq, result)
