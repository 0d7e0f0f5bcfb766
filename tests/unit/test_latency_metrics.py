"""The latency hooks of the hot path: a stored message's ``ts`` read from its raw JSON, and
the durable write timed per call (the histograms themselves live in chat/adapters/metrics.py)."""

from __future__ import annotations

import msgspec
from fakes.node import MemoryNode, World

from chat.core.inbound import message_ts
from chat.core.messaging import Messaging


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
