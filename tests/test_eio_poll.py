"""The replacement of python-engineio's ``AsyncSocket.poll`` (chat/adapters/eio_poll.py) keeps
the library's behaviour: both versions run the same cases."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from engineio import exceptions

from chat.adapters import eio_poll

POLLS = {"library": eio_poll.ORIGINAL, "project": eio_poll.poll}


def socket(*queued: Any, wait: float = 0.05) -> Any:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in queued:
        queue.put_nowait(item)
    return SimpleNamespace(queue=queue, server=SimpleNamespace(ping_interval=wait, ping_timeout=0))


@pytest.fixture(params=sorted(POLLS))
def poll(request: pytest.FixtureRequest) -> Any:
    return POLLS[request.param]


async def test_everything_queued_comes_in_one_poll(poll: Any) -> None:
    sock = socket("a", "b", "c")
    assert await poll(sock) == ["a", "b", "c"]
    assert sock.queue.empty()


async def test_the_end_marker_stops_a_batch_and_stays_queued(poll: Any) -> None:
    sock = socket("a", None, "b")
    assert await poll(sock) == ["a"]
    assert await poll(sock) == ["b"]  # the marker went back to the end of the queue
    assert await poll(sock) == []  # and ends the writer


async def test_a_packet_queued_later_wakes_the_poll(poll: Any) -> None:
    sock = socket(wait=5)
    waiting = asyncio.ensure_future(poll(sock))
    await asyncio.sleep(0)  # the poll is parked on the empty queue
    assert not waiting.done()
    sock.queue.put_nowait("late")
    assert await waiting == ["late"]


async def test_silence_until_the_ping_deadline_raises_queue_empty(poll: Any) -> None:
    with pytest.raises(exceptions.QueueEmpty):
        await poll(socket(wait=0.01))


async def test_cancellation_reads_as_queue_empty(poll: Any) -> None:
    sock = socket(wait=5)
    outer = asyncio.ensure_future(poll(sock))
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(exceptions.QueueEmpty):
        await outer


def test_applied_to_the_pinned_series_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from engineio import async_socket

    monkeypatch.setattr(async_socket.AsyncSocket, "poll", eio_poll.ORIGINAL)
    monkeypatch.setattr(eio_poll, "version", lambda _: "5.0.0")
    assert not eio_poll.apply()
    assert async_socket.AsyncSocket.poll is eio_poll.ORIGINAL
    monkeypatch.setattr(eio_poll, "version", lambda _: eio_poll.SERIES + "9")
    assert eio_poll.apply()
    assert async_socket.AsyncSocket.poll is eio_poll.poll
