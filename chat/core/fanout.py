"""What a node does with a payload that arrived on one of its channels.

``emit`` envelopes go to the local Socket.IO room named like the channel; room messages pass
through ``Ordering`` first (in order, once).  ``ctl`` envelopes are actions for the node itself
(registered by name).  The handler runs inside a shard's listener loop, so it never raises: a
bad payload is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from chat.core.ordering import Ordering
from chat.models import decode_envelope
from chat.ports import LocalDelivery

log = logging.getLogger(__name__)

Control = Callable[[str, Any], Awaitable[None]]


class Fanout:
    def __init__(self, delivery: LocalDelivery, ordering: Ordering) -> None:
        self._delivery = delivery
        self._ordering = ordering
        self._controls: dict[str, Control] = {}
        self.received = 0

    def on_control(self, action: str, handler: Control) -> None:
        self._controls[action] = handler

    async def __call__(self, channel: str, payload: bytes) -> None:
        self.received += 1
        try:
            envelope = decode_envelope(payload)
            if envelope.kind == "emit" and envelope.event == "message":
                await self._ordering.on_message(channel, envelope.data)
            elif envelope.kind == "emit":
                await self._delivery.emit(
                    channel, envelope.event, envelope.data, envelope.skip_user
                )
            elif envelope.kind == "ctl" and envelope.event in self._controls:
                await self._controls[envelope.event](channel, envelope.data)
            else:
                log.warning("dropped %s/%s on %s", envelope.kind, envelope.event, channel)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable payload on %s", channel)
        except Exception:
            log.exception("delivery failed on %s", channel)
