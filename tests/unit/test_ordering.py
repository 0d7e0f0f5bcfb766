"""Ordering: in order, exactly once, gaps filled from history (pure logic, no Redis)."""

from __future__ import annotations

import asyncio

import pytest

from chat.core.ordering import Ordering
from chat.models import Delivery

HOLD = 0.02
TIMEOUT = 2.0


def msg(seq: int, room: str = "r") -> Delivery:
    return Delivery(room, seq, b'{"text": "m%d"}' % seq)


class Harness:
    def __init__(self, stored=(), hold=HOLD):
        self.delivered: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.stored = {m.seq: m for m in stored}
        self.fetches: list[tuple[str, int, int]] = []
        self.fail_fetches = 0
        self.ordering = Ordering(self.deliver, self.fetch, hold=hold)

    async def deliver(self, channel, message):
        await asyncio.sleep(0)  # a real emit yields: interleavings must not reorder
        self.delivered.put_nowait((channel, message.seq))

    async def fetch(self, room, after, upto):
        self.fetches.append((room, after, upto))
        if self.fail_fetches:
            self.fail_fetches -= 1
            raise ConnectionError("history unavailable")
        return [self.stored[s] for s in sorted(self.stored) if after < s <= upto]

    async def take(self, count: int) -> list[int]:
        return [(await asyncio.wait_for(self.delivered.get(), TIMEOUT))[1] for _ in range(count)]

    def nothing_more(self) -> bool:
        return self.delivered.empty()

    async def open(self, channel="room:r", baselines=None):
        self.ordering.opening(channel)
        await self.ordering.opened(channel, baselines or {"r": 0})


async def test_in_order_messages_pass_straight_through_and_duplicates_are_dropped():
    h = Harness()
    await h.open()
    for seq in (1, 2, 2, 3, 1):
        await h.ordering.on_message("room:r", msg(seq))
    assert await h.take(3) == [1, 2, 3]
    assert h.nothing_more() and h.ordering.duplicates == 2
    assert h.ordering.pointer("room:r", "r") == 3 and h.fetches == []


async def test_an_early_message_waits_for_the_late_one():
    h = Harness()
    await h.open()
    await h.ordering.on_message("room:r", msg(2))
    await h.ordering.on_message("room:r", msg(3))
    assert h.nothing_more()
    await h.ordering.on_message("room:r", msg(1))
    assert await h.take(3) == [1, 2, 3]


async def test_a_gap_that_does_not_close_is_filled_from_history():
    h = Harness(stored=[msg(1), msg(2)])
    await h.open()
    await h.ordering.on_message("room:r", msg(3))
    assert await h.take(3) == [1, 2, 3]
    assert h.fetches == [("r", 0, 2)]
    assert h.ordering.gaps_filled == 2


async def test_a_failed_history_read_is_retried():
    h = Harness(stored=[msg(1)])
    h.fail_fetches = 1
    await h.open()
    await h.ordering.on_message("room:r", msg(2))
    assert await h.take(2) == [1, 2]
    assert len(h.fetches) == 2


async def test_a_gap_trimmed_from_history_is_skipped_not_waited_for_forever():
    h = Harness(stored=[])
    await h.open()
    await h.ordering.on_message("room:r", msg(5))
    assert await h.take(1) == [5]
    assert h.ordering.pointer("room:r", "r") == 5


async def test_messages_arriving_while_a_channel_opens_are_replayed_after_the_baseline():
    h = Harness()
    h.ordering.opening("room:r")
    for seq in (4, 6, 5, 3):  # 3 and 4 are at or below the baseline: the client syncs them
        await h.ordering.on_message("room:r", msg(seq))
    assert h.nothing_more()
    await h.ordering.opened("room:r", {"r": 4})
    assert await h.take(2) == [5, 6]
    assert h.nothing_more()


async def test_a_room_first_seen_on_a_user_channel_starts_at_zero():
    h = Harness(stored=[msg(1, "dm:a:b")])
    await h.open("user:a", {"dm:a:c": 7})
    await h.ordering.on_message("user:a", msg(2, "dm:a:b"))
    await h.ordering.on_message("user:a", msg(8, "dm:a:c"))
    assert sorted(await h.take(3)) == [1, 2, 8]
    assert h.ordering.pointer("user:a", "dm:a:b") == 2


async def test_each_channel_has_its_own_streams():
    """One DM arrives on both users' channels; each delivers it to its own sockets once."""
    h = Harness()
    await h.open("user:a", {})
    await h.open("user:b", {})
    for channel in ("user:a", "user:b", "user:a"):
        await h.ordering.on_message(channel, msg(1, "dm:a:b"))
    got = [await asyncio.wait_for(h.delivered.get(), TIMEOUT) for _ in range(2)]
    assert sorted(got) == [("user:a", 1), ("user:b", 1)] and h.nothing_more()


async def test_a_closed_channel_forgets_its_streams():
    h = Harness()
    await h.open()
    await h.ordering.on_message("room:r", msg(1))
    assert await h.take(1) == [1]
    h.ordering.closed("room:r")
    await h.ordering.on_message("room:r", msg(2))
    assert h.nothing_more() and h.ordering.pointer("room:r", "r") is None
    await h.open(baselines={"r": 5})
    await h.ordering.on_message("room:r", msg(6))
    assert await h.take(1) == [6]


async def test_live_messages_and_a_gap_fill_never_interleave_out_of_order():
    stored = [msg(s) for s in range(1, 60)]
    h = Harness(stored=stored, hold=0.001)
    await h.open()
    # Every third message is "lost" in transit; the rest arrive, some twice, out of order.
    arriving = [s for s in range(1, 60) if s % 3] + [7, 2, 58]
    for seq in arriving:
        await h.ordering.on_message("room:r", msg(seq))
    assert await h.take(59) == list(range(1, 60))
    assert h.nothing_more()


@pytest.mark.parametrize("baseline", [0, 3])
async def test_pointer_counts_a_message_before_its_delivery_completes(baseline):
    """A socket entering the local room reads the pointer; the emit in flight must already
    be counted in it, or the client would fetch the message by sync *and* receive it."""
    seen_pointer = []

    async def deliver(channel, message):
        seen_pointer.append(ordering.pointer(channel, "r"))

    async def fetch(room, after, upto):
        return []

    ordering = Ordering(deliver, fetch, hold=HOLD)
    ordering.opening("room:r")
    await ordering.opened("room:r", {"r": baseline})
    await ordering.on_message("room:r", msg(baseline + 1))
    assert seen_pointer == [baseline + 1]
    await ordering.close()


async def test_catch_up_delivers_what_history_has_beyond_the_pointer_in_order_once():
    """A channel whose shard connection was replaced may have missed messages."""
    stored = [msg(s) for s in range(1, 250)]
    h = Harness(stored)
    await h.open(baselines={"r": 2})
    await h.ordering.on_message("room:r", msg(3))
    await h.ordering.catch_up("room:r", {"r": 249, "unfollowed": 9})
    assert await h.take(247) == list(range(3, 250))  # 3 live, then 4..249 in pages
    await h.ordering.on_message("room:r", msg(200))  # a late live copy: a duplicate
    assert h.nothing_more() and h.ordering.pointer("room:r", "r") == 249
    assert [f[0] for f in h.fetches] == ["r"] * 3  # pages of FETCH_LIMIT, no unfollowed room


async def test_catch_up_skips_a_trimmed_gap_and_ignores_channels_not_followed():
    h = Harness([msg(9)])
    await h.open(baselines={"r": 2})
    await h.ordering.catch_up("room:r", {"r": 9})  # 3..8 trimmed: skipped after the hold
    await h.ordering.catch_up("room:gone", {"r": 9})
    assert await h.take(1) == [9]
    assert h.nothing_more() and h.ordering.pointer("room:r", "r") == 9
