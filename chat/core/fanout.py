"""What a node does with a payload that arrived on one of its channels.

``emit`` envelopes go to the local Socket.IO room named like the channel; room messages pass
through ``Ordering`` first (in order, once).  ``ctl`` envelopes are actions for the node itself
(registered by name).  The handler runs inside a shard's listener loop, so it never raises: a
bad payload is logged and dropped.

Hazard: a control action may wait on that same listener (following a room subscribes a
channel, whose confirmation only the listener can read).  Actions therefore run as tasks,
chained per channel so that they still take effect in the order they were published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from chat.core.ordering import Ordering
from chat.models import Delivery, decode_envelope, decode_json
from chat.ports import LocalDelivery

log = logging.getLogger(__name__)

Control = Callable[[str, Any], Awaitable[None]]


class Fanout:
    def __init__(self, delivery: LocalDelivery, ordering: Ordering) -> None:
        self._delivery = delivery
        self._ordering = ordering
        self._controls: dict[str, Control] = {}
        self._tails: dict[str, asyncio.Task[None]] = {}  # the last action queued per channel
        self.received = 0

    def on_control(self, action: str, handler: Control) -> None:
        self._controls[action] = handler

    async def __call__(self, channel: str, payload: bytes) -> None:
        self.received += 1
        try:
            envelope = decode_envelope(payload)
            if envelope.kind == "emit" and envelope.room is not None and envelope.seq is not None:
                message = Delivery(envelope.room, envelope.seq, bytes(envelope.data))
                await self._ordering.on_message(channel, message)
            elif envelope.kind == "emit":
                raw = bytes(envelope.data)
                await self._delivery.emit_raw(channel, envelope.event, raw, envelope.skip_user)
            elif envelope.kind == "ctl" and envelope.event in self._controls:
                data = decode_json(envelope.data)
                self._queue(channel, self._controls[envelope.event], data)
            else:
                log.warning("dropped %s/%s on %s", envelope.kind, envelope.event, channel)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable payload on %s", channel)
        except Exception:
            log.exception("delivery failed on %s", channel)

    def _queue(self, channel: str, action: Control, data: Any) -> None:
        previous = self._tails.get(channel)
        task = asyncio.create_task(self._run(previous, channel, action, data))
        self._tails[channel] = task
        task.add_done_callback(lambda done: self._forget(channel, done))

    async def _run(
        self, previous: asyncio.Task[None] | None, channel: str, action: Control, data: Any
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
