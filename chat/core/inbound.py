"""What a node does with a payload that arrived on one of its channels.

``emit`` envelopes go to the local Socket.IO room named like the channel; room messages pass
through ``Ordering`` first (in order, once).  ``ctl`` envelopes are actions for the node itself
(the typed structs of ``controls.py``, one handler per kind).  The handler runs inside a
shard's listener loop, so it never raises: a bad payload is logged and dropped.

Hazard: a control action may wait on that same listener (following a room subscribes a
channel, whose confirmation only the listener can read).  Actions therefore run as tasks,
chained per channel so that they still take effect in the order they were published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from chat.core.controls import Control
from chat.core.ordering import FETCH_LIMIT, Ordering
from chat.models import Delivery, decode_envelope, message_delivery
from chat.ports import History, LocalDelivery

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Control)


#: Takes one delivery's latency in seconds (a histogram's ``observe``; the default: nothing).
Observe = Callable[[float], None]


def _ignore(_seconds: float) -> None:
    return None


def room_ordering(
    delivery: LocalDelivery, history: History, hold_ms: int, observe: Observe = _ignore
) -> Ordering:
    """Room messages in seq order to the local sockets; gaps filled from history.

    ``observe`` gets each message's end-to-end latency: from its server ``ts`` (the Redis
    clock of the append) to its emit here.  Hazard: the two clocks differ by their skew, so
    a negative latency is counted as 0 rather than dropped (it still counts the delivery).
    """

    async def deliver(channel: str, message: Delivery) -> None:
        await delivery.emit_raw(channel, "message", message.raw)
        ts = message_ts(message.raw)
        if ts is not None:
            observe(max(0.0, time.time() - ts / 1000))

    async def fetch(room: str, after: int, upto: int) -> list[Delivery]:
        found = await history.between(room, after, upto, FETCH_LIMIT)
        return [message_delivery(m) for m in found]

    return Ordering(deliver, fetch, hold=hold_ms / 1000)


def message_ts(raw: bytes) -> int | None:
    """A stored message's ``ts`` (ms) read from its JSON without decoding it all (hot path).

    The append script writes ``..."id":"<id>","ts":<ms>,"from"...`` before any client text,
    and JSON escapes every quote inside strings, so the first ``,"ts":`` is the field.
    """
    at = raw.find(b',"ts":')
    if at < 0:
        return None
    start = at + 6
    end = start
    while end < len(raw) and 48 <= raw[end] <= 57:
        end += 1
    return int(raw[start:end]) if end > start else None


ControlHandler = Callable[[str, Any], Awaitable[None]]
#: Delivers one event (not a room message) to the local sockets of a channel in place of the
#: plain delivery: ``(channel, raw JSON, skip_user)``.  It runs in the listener loop too.
EmitHandler = Callable[[str, bytes, str | None], Awaitable[None]]


class InboundDispatcher:
    def __init__(self, delivery: LocalDelivery, ordering: Ordering) -> None:
        self._delivery = delivery
        self._ordering = ordering
        self._controls: dict[str, tuple[type[Control], ControlHandler]] = {}
        self._tails: dict[str, asyncio.Task[None]] = {}  # the last action queued per channel
        self._emits: dict[str, EmitHandler] = {}
        self.received = 0

    def on_emit(self, event: str, handler: EmitHandler) -> None:
        """Deliver ``event`` with ``handler`` (a filter per socket, such as blocked typing)."""
        self._emits[event] = handler

    def on_control(self, kind: type[C], handler: Callable[[str, C], Awaitable[None]]) -> None:
        """Run ``handler`` for each ``kind`` of control (core/controls.py) on any channel."""
        self._controls[kind.ACTION] = (kind, handler)

    async def __call__(self, channel: str, payload: bytes) -> None:
        self.received += 1
        try:
            envelope = decode_envelope(payload)
            if envelope.kind == "emit" and envelope.room is not None and envelope.seq is not None:
                message = Delivery(envelope.room, envelope.seq, bytes(envelope.data))
                await self._ordering.on_message(channel, message)
            elif envelope.kind == "emit":
                raw = bytes(envelope.data)
                special = self._emits.get(envelope.event)
                if special is not None:
                    await special(channel, raw, envelope.skip_user)
                else:
                    await self._delivery.emit_raw(channel, envelope.event, raw, envelope.skip_user)
            elif envelope.kind == "ctl" and envelope.event in self._controls:
                kind, handler = self._controls[envelope.event]
                self._queue(channel, handler, msgspec.json.decode(envelope.data, type=kind))
            else:
                log.warning("dropped %s/%s on %s", envelope.kind, envelope.event, channel)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable payload on %s", channel)
        except Exception:
            log.exception("delivery failed on %s", channel)

    def _queue(self, channel: str, action: ControlHandler, data: Any) -> None:
        previous = self._tails.get(channel)
        task = asyncio.create_task(self._run(previous, channel, action, data))
        self._tails[channel] = task
        task.add_done_callback(lambda done: self._forget(channel, done))

    async def _run(
        self, previous: asyncio.Task[None] | None, channel: str, action: ControlHandler, data: Any
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own business
        try:
            await action(channel, data)
        except Exception:
            log.exception("control action failed on %s", channel)

    def _forget(self, channel: str, done: asyncio.Task[None]) -> None:
        if self._tails.get(channel) is done:
            del self._tails[channel]

    async def close(self) -> None:
        tasks = list(self._tails.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
