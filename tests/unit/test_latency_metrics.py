"""The latency hooks of the hot path: a stored message's ``ts`` read from its raw JSON, and
the durable write timed per call (the histograms themselves live in chat/adapters/metrics.py)."""

from __future__ import annotations

import time

import msgspec
from fakes.delivery import MemoryDelivery
from fakes.history import MemoryHistory
from fakes.node import MemoryNode, World

from chat.core.inbound import message_ts, room_ordering
from chat.core.messaging import Messaging
from chat.models import Delivery


def test_message_ts_reads_the_field_not_text_that_looks_like_it() -> None:
    raw = msgspec.json.encode(
        {"room": 'r,"ts":1', "seq": 3, "id": "3.x", "ts": 1700000000123, "text": ',"ts":9'}
    )
    assert message_ts(raw) == 1700000000123


def test_message_ts_without_a_ts_is_none() -> None:
    assert message_ts(b'{"room":"r","seq":1}') is None
    assert message_ts(b'{"room":"r","ts":null}') is None


async def test_each_durable_write_is_timed(world: World, node: MemoryNode) -> None:
    seen: list[float] = []
    messaging = Messaging(
        node.broker, world.history, node.rooms, world.rooms, world.accounts, text_max=2000,
        observe_write=seen.append,
    )  # fmt: skip
    ann = world.accounts.records["ann"]
    await messaging.dm(ann, "bob", "hi", None)
    await messaging.dm(ann, "bob", "again", "c1")
    assert len(seen) == 2 and min(seen) >= 0


async def test_each_room_message_delivery_is_timed_from_its_server_ts() -> None:
    seen: list[float] = []
    ordering = room_ordering(MemoryDelivery(), MemoryHistory(), hold_ms=50, observe=seen.append)
    ordering.opening("room:r")
    await ordering.opened("room:r", {"r": 0})
    now_ms = int(time.time() * 1000)
    await ordering.on_message("room:r", Delivery("r", 1, b'{"seq":1,"ts":%d}' % (now_ms - 1500)))
    # A clock ahead of the receiver's: counted, as 0.
    await ordering.on_message("room:r", Delivery("r", 2, b'{"seq":2,"ts":%d}' % (now_ms + 9000)))
    assert len(seen) == 2
    assert 1.4 < seen[0] < 60 and seen[1] == 0.0
