"""Sending messages: validate, number, publish.

(Durable history, idempotency and per-room ordering grow here; the broker and the store are
reached only through the interfaces in ``chat.ports``.)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from chat import keys
from chat.core.text import clean_text
from chat.models import Envelope, Message, UserRef, dm_room_id, encode_envelope, to_wire
from chat.ports import Broker, MessageStore


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Messaging:
    def __init__(
        self,
        broker: Broker,
        store: MessageStore,
        *,
        text_max: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._broker = broker
        self._store = store
        self._text_max = text_max
        self._clock = clock

    async def send_dm(self, sender: UserRef, to: str, text: str, cid: str | None) -> Message:
        """Deliver a direct message to every socket of both users, wherever they are."""
        text = clean_text(text, self._text_max)
        room = dm_room_id(sender.id, to)
        seq = await self._store.next_seq(room)
        message = Message(
            id=secrets.token_urlsafe(12),
            room=room,
            seq=seq,
            sender=sender,
            text=text,
            ts=self._clock(),
            cid=cid,
        )
        payload = encode_envelope(Envelope("emit", "message", to_wire(message)))
        # A set: a note to oneself is published (and delivered) once.
        channels = {keys.user_channel(sender.id), keys.user_channel(to)}
        await asyncio.gather(*(self._broker.publish(ch, payload) for ch in channels))
        return message
