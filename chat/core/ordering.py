"""In-order, exactly-once delivery of room messages to this node's sockets.

Messages of one room are numbered by the history cluster (``seq`` 1, 2, 3, ...) but published
by whichever node stored them, so two nodes can publish seq 6 before seq 5.  For every
(channel, room) stream this node follows, it keeps the last ``seq`` it delivered (the
*pointer*): the next one is delivered at once; an early one is held for ``hold`` seconds, and
if the missing ones have not arrived by then they are read from history; anything at or below
the pointer is a duplicate and dropped.

A stream's pointer starts from the room's last seq read *after* the channel was subscribed:
whatever comes later is delivered live, whatever came before is the client's to fetch (its
``session``/``join`` tells it the pointer, ``sync`` answers up to it).  While a channel is
opening, its messages are buffered and replayed once the baselines are known.

Hazard: the delivery of live messages runs inside a shard's listener loop.  Nothing here may
block on I/O there; only the gap-filling task reads history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from chat.models import Delivery

log = logging.getLogger(__name__)

#: deliver(channel, message): emit to the local sockets that follow the channel.
Deliver = Callable[[str, Delivery], Awaitable[None]]
#: fetch(room, after, upto) -> messages with after < seq <= upto, ascending.
Fetch = Callable[[str, int, int], Awaitable[list[Delivery]]]

FETCH_LIMIT = 100


@dataclass
class _Stream:
    pointer: int
    pending: dict[int, Delivery] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    draining: bool = False


@dataclass
class _Channel:
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    buffer: list[Delivery] = field(default_factory=list)
    streams: dict[str, _Stream] = field(default_factory=dict)


class Ordering:
    def __init__(self, deliver: Deliver, fetch: Fetch, *, hold: float = 0.2) -> None:
        self._deliver = deliver
        self._fetch = fetch
        self._hold = hold
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.gaps_filled = 0
        self.duplicates = 0

    # --- channel lifecycle (driven by the node's subscriptions) ----------------------------

    def opening(self, channel: str) -> None:
        """The channel is being subscribed: hold its messages until ``opened``."""
        self._channels.setdefault(channel, _Channel())

    async def opened(self, channel: str, baselines: Mapping[str, int]) -> None:
        """Set each room's pointer to its last seq read after the subscription, then replay
        what arrived meanwhile.  Rooms not listed start at 0 (rooms created later)."""
        state = self._channels.setdefault(channel, _Channel())
        for room, seq in baselines.items():
            stream = state.streams.setdefault(room, _Stream(seq))
            stream.pointer = max(stream.pointer, seq)
        state.opened.set()
        buffered, state.buffer = state.buffer, []
        for message in buffered:
            await self.on_message(channel, message)

    async def wait_opened(self, channel: str) -> None:
        state = self._channels.get(channel)
        if state is not None:
            await state.opened.wait()

    def closed(self, channel: str) -> None:
        """The channel was unsubscribed: forget its streams (a later open starts afresh)."""
        state = self._channels.pop(channel, None)
        for stream in state.streams.values() if state else ():
            if stream.timer is not None:
                stream.timer.cancel()

    async def add_room(self, channel: str, room: str, baseline: int) -> int:
        """Follow one more room on an open channel (a join); return its pointer."""
        state = self._channels.setdefault(channel, _Channel())
        stream = state.streams.setdefault(room, _Stream(baseline))
        return stream.pointer

    def pointer(self, channel: str, room: str) -> int | None:
        state = self._channels.get(channel)
        stream = state.streams.get(room) if state else None
        return stream.pointer if stream else None

    async def close(self) -> None:
        for channel in list(self._channels):
            self.closed(channel)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- messages ------------------------------------------------------------------------------

    async def on_message(self, channel: str, message: Delivery) -> None:
        state = self._channels.get(channel)
        if state is None:
            return  # not followed (any more): nobody here needs it
        if not state.opened.is_set():
            state.buffer.append(message)
            return
        room, seq = message.room, message.seq
        stream = state.streams.setdefault(room, _Stream(0))
        if seq <= stream.pointer or seq in stream.pending:
            self.duplicates += 1
            return
        stream.pending[seq] = message
        await self._drain(channel, stream)
        self._watch_gap(channel, room, stream)

    def _watch_gap(self, channel: str, room: str, stream: _Stream) -> None:
        """Give a gap ``hold`` seconds to close by itself before reading history."""
        if stream.pending and stream.timer is None and stream.pointer + 1 not in stream.pending:
            loop = asyncio.get_running_loop()
            stream.timer = loop.call_later(self._hold, self._start_fill, channel, room)

    async def _drain(self, channel: str, stream: _Stream) -> None:
        """Deliver the run of pending messages that follows the pointer.

        One drain per stream at a time (the listener and a gap fill may both get here); the
        running one picks up what the other added.  The pointer moves before the emit, with no
        await between: a socket entering the local room reads a pointer that already counts
        this message exactly when the emit's recipients include it.
        """
        if stream.draining:
            return
        stream.draining = True
        try:
            while (message := stream.pending.pop(stream.pointer + 1, None)) is not None:
                stream.pointer += 1
                await self._deliver(channel, message)
        finally:
            stream.draining = False

    async def catch_up(self, channel: str, last_seqs: Mapping[str, int]) -> None:
        """The channel may have missed messages (its shard connection was replaced, or a
        publisher could not reach the shard): deliver, in order and once, what history holds
        beyond each pointer up to ``last_seqs`` (read after the channel was live again)."""
        state = self._channels.get(channel)
        if state is None or not state.opened.is_set():
            return  # an opening channel reads its baselines after the subscription anyway
        for room, last in last_seqs.items():
            stream = state.streams.get(room)
            while stream is not None and stream.pointer < last:
                after = stream.pointer
                fetched = await self._fetch(room, after, min(last, after + FETCH_LIMIT))
                if self._channels.get(channel) is not state:
                    return  # closed (or reopened) while we read
                for message in fetched:
                    if message.seq > stream.pointer:
                        stream.pending.setdefault(message.seq, message)
                        self.gaps_filled += 1
                await self._drain(channel, stream)
                if stream.pointer == after:  # a gap (trimmed away): the gap watch skips it
                    self._watch_gap(channel, room, stream)
                    break

    # --- gap filling -------------------------------------------------------------------------

    def _start_fill(self, channel: str, room: str) -> None:
        task = asyncio.create_task(self._fill(channel, room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, channel: str, room: str) -> None:
        state = self._channels.get(channel)
        stream = state.streams.get(room) if state else None
        if stream is None:
            return
        stream.timer = None
        if not stream.pending or stream.pointer + 1 in stream.pending:
            await self._drain(channel, stream)
            return
        after = stream.pointer
        upto = min(min(stream.pending) - 1, after + FETCH_LIMIT)
        try:
            fetched = await self._fetch(room, after, upto)
        except Exception as exc:  # history unavailable: try again after another hold
            log.warning("%s: gap after %d not filled yet: %r", room, after, exc)
            fetched = None
        if self._channels.get(channel) is not state:
            return  # closed (or reopened) while we read
        if fetched == [] and stream.pointer == after:
            # When seq N is stored, every seq below it is too (one script per room and
            # master), so a gap that history cannot fill was trimmed away: skip it.
            log.warning("%s: seq %d..%d no longer in history, skipped", room, after + 1, upto)
            stream.pointer = upto
        for message in fetched or ():
            if message.seq > stream.pointer:
                stream.pending.setdefault(message.seq, message)
                self.gaps_filled += 1
        await self._drain(channel, stream)
        self._watch_gap(channel, room, stream)
