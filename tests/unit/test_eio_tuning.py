"""python-engineio's trimmed ``AsyncSocket.poll`` and socket queue (chat/adapters/eio_tuning.py)
keep the library's behaviour: the library's poll and ours run the same cases, each over
``asyncio.Queue`` (what engineio makes) and over ``PacketQueue``."""

from __future__ import annotations

import asyncio
import time
from types import MethodType, SimpleNamespace
from typing import Any

import pytest
from engineio import async_socket, exceptions
from engineio import packet as eio_packet

from chat.adapters import eio_ping, eio_reader, eio_tuning

POLLS = {"library": eio_tuning.ORIGINAL, "project": eio_tuning.poll}
LIBRARY_PING = eio_ping.LIBRARY
PINGS = {"library": LIBRARY_PING, "project": eio_ping.schedule_ping}
LIBRARY_HANDLER = eio_reader.LIBRARY
QUEUES = {"asyncio": asyncio.Queue, "packet": eio_tuning.PacketQueue}
#: Set by the ``poll`` fixture: the queue class the sockets of a test get.
QUEUE: list[Any] = [asyncio.Queue]


def socket(*queued: Any, wait: float = 0.05, upgraded: bool = False) -> Any:
    queue = QUEUE[0]()
    for item in queued:
        queue.put_nowait(item)
    # As ``apply`` leaves a server it tuned (the bound ``send`` checks).
    server = SimpleNamespace(ping_interval=wait, ping_timeout=0, chat_queued_max=1 << 22)
    return SimpleNamespace(queue=queue, server=server, upgraded=upgraded)


@pytest.fixture(params=[(p, q) for p in sorted(POLLS) for q in sorted(QUEUES)], ids=str)
def poll(request: pytest.FixtureRequest) -> Any:
    name, queue = request.param
    QUEUE[0] = QUEUES[queue]
    return POLLS[name]


@pytest.fixture(params=sorted(QUEUES))
def queue(request: pytest.FixtureRequest) -> Any:
    return QUEUES[request.param]()


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
    # Callbacks run in the order they were scheduled: the poll parks first, then this puts.
    asyncio.get_running_loop().call_soon(sock.queue.put_nowait, "late")
    assert await waiting == ["late"]


async def test_silence_until_the_ping_deadline_raises_queue_empty(poll: Any) -> None:
    with pytest.raises(exceptions.QueueEmpty):
        await poll(socket(wait=0.01))


async def test_cancellation_reads_as_queue_empty(poll: Any) -> None:
    sock = socket(wait=5)
    outer = asyncio.ensure_future(poll(sock))
    asyncio.get_running_loop().call_soon(outer.cancel)  # once the poll is parked
    with pytest.raises(exceptions.QueueEmpty):
        await outer


def test_applied_to_the_pinned_series_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from engineio import async_socket, payload

    def server() -> Any:
        return SimpleNamespace(
            create_queue=asyncio.Queue, _async={"websocket": "library's"},
            max_http_buffer_size=65536,
        )  # fmt: skip

    monkeypatch.setattr(payload.Payload, "max_decode_packets", 16)

    monkeypatch.setattr(async_socket.AsyncSocket, "poll", eio_tuning.ORIGINAL)
    monkeypatch.setattr(async_socket.AsyncSocket, "schedule_ping", LIBRARY_PING)
    monkeypatch.setattr(async_socket.AsyncSocket, "_websocket_handler", LIBRARY_HANDLER)
    monkeypatch.setattr(eio_tuning, "version", lambda _: "5.0.0")
    other = server()
    assert not eio_tuning.apply(other, compression=False)
    assert async_socket.AsyncSocket.poll is eio_tuning.ORIGINAL
    assert async_socket.AsyncSocket.schedule_ping is LIBRARY_PING
    assert async_socket.AsyncSocket._websocket_handler is LIBRARY_HANDLER
    assert other.create_queue is asyncio.Queue and other._async["websocket"] == "library's"
    assert payload.Payload.max_decode_packets == 32768  # on any series: a POST of many events
    monkeypatch.setattr(eio_tuning, "version", lambda _: eio_tuning.SERIES + "9")
    plain, compressing = server(), server()
    assert eio_tuning.apply(plain, compression=False)
    assert eio_tuning.apply(compressing, compression=True)
    assert async_socket.AsyncSocket.poll is eio_tuning.poll
    assert async_socket.AsyncSocket.schedule_ping is eio_ping.schedule_ping
    assert async_socket.AsyncSocket._websocket_handler is eio_reader.websocket_handler
    assert isinstance(plain.create_queue(), eio_tuning.PacketQueue)
    assert plain._async["websocket"] is eio_tuning.PlainWebSocket
    assert compressing._async["websocket"] == "library's"


# --- the queue's own contract, against asyncio.Queue's ----------------------------------------


async def test_first_in_first_out_and_empty_raises(queue: Any) -> None:
    for item in range(200):  # past the compaction point
        await queue.put(item)
    assert queue.qsize() == 200 and not queue.empty()
    assert [queue.get_nowait() for _ in range(150)] == list(range(150))
    queue.put_nowait("last")
    assert [await queue.get() for _ in range(51)] == [*range(150, 200), "last"]
    assert queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_getters_are_served_in_order(queue: Any) -> None:
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    loop = asyncio.get_running_loop()
    loop.call_soon(queue.put_nowait, "a")  # once both wait
    loop.call_soon(queue.put_nowait, "b")
    assert await first == "a" and await second == "b"


async def test_a_woken_getter_that_is_cancelled_hands_the_item_on(queue: Any) -> None:
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())

    def wake_then_cancel() -> None:  # once both wait
        queue.put_nowait("only")  # wakes the first ...
        first.cancel()  # ... which is cancelled before it runs

    asyncio.get_running_loop().call_soon(wake_then_cancel)
    assert await asyncio.wait_for(second, 1) == "only"


async def test_join_waits_for_every_task_done(queue: Any) -> None:
    await queue.join()  # nothing queued: at once
    queue.put_nowait("a")
    queue.put_nowait("b")
    joined = asyncio.ensure_future(queue.join())
    seen = []

    loop = asyncio.get_running_loop()

    def finish_one() -> None:
        seen.append(joined.done())
        queue.get_nowait()
        queue.task_done()
        if not queue.empty():  # the next one after whatever this one woke has run
            loop.call_soon(finish_one)

    loop.call_soon(finish_one)  # once join waits
    await asyncio.wait_for(joined, 1)
    assert seen == [False, False]  # one task done was not enough
    with pytest.raises(ValueError):
        queue.task_done()


class Written:
    """A websocket (``PlainWebSocket.send``) and the library's ``AsyncSocket.send``, both
    recording: ``("ws", text)`` written directly, ``("queued", packet)`` queued."""

    def __init__(self, sock: Any) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._sock = sock
        sock.queue.websocket = self
        sock.closing = sock.closed = False
        sock.send = self._queue
        sock.check_ping_timeout = self._alive

    def write_now(self, texts: list[str]) -> bool:
        self.seen.append(("ws", texts))
        return True

    async def _queue(self, packet: Any) -> None:
        self.seen.append(("queued", packet.text))
        self._sock.queue.put_nowait(packet)

    async def _alive(self) -> bool:
        return True


async def parked(sock: Any) -> None:
    """One turn of the loop: the poll started just before has parked."""
    turn = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(turn.set_result, None)
    await turn
    assert sock.queue.writer_idle == sock.upgraded


class Packet(SimpleNamespace):
    def encode(self) -> str:
        return str(self.text)


async def test_packets_for_an_idle_websocket_writer_leave_together_at_the_turns_end() -> None:
    QUEUE[0] = eio_tuning.PacketQueue
    sock = socket(wait=5, upgraded=True)
    written = Written(sock)
    writer = asyncio.ensure_future(eio_tuning.poll(sock))
    await parked(sock)
    await eio_tuning.send(sock, Packet(text="a"))
    await eio_tuning.send(sock, Packet(text="b"))
    await eio_tuning.send(sock, Packet(text="c"))
    assert written.seen == [("ws", ["a"])]  # the first at once, the rest at the turn's end
    await parked(sock)
    assert written.seen == [("ws", ["a"]), ("ws", ["b", "c"])] and not writer.done()
    await eio_tuning.send(sock, Packet(text="d"))
    await eio_tuning.send(sock, Packet(text="e"))
    sock.queue.put_nowait(Packet(text="ping"))  # the library's own send: queued behind e
    await eio_tuning.send(sock, Packet(text="f"))  # and f behind the ping
    assert [p.text for p in await writer] == ["ping", "f"]
    # On the wire: d, then e (the flush runs before the writer wakes), then ping and f.
    assert [w for w in written.seen if w[0] == "ws"][-2:] == [("ws", ["d"]), ("ws", ["e"])]


async def test_what_cannot_be_written_goes_before_everything_queued() -> None:
    QUEUE[0] = eio_tuning.PacketQueue
    sock = socket(wait=5, upgraded=True)
    written = Written(sock)
    writer = asyncio.ensure_future(eio_tuning.poll(sock))
    await parked(sock)
    await eio_tuning.send(sock, Packet(text="a"))
    written.write_now = lambda texts: False  # type: ignore[method-assign]  # a full buffer
    await eio_tuning.send(sock, Packet(text="b"))
    sock.queue.put_nowait(Packet(text="c"))
    assert [p.text for p in await writer] == ["b", "c"]
    assert written.seen == [("ws", ["a"])]


async def test_packets_take_the_queue_while_the_writer_is_not_idle() -> None:
    QUEUE[0] = eio_tuning.PacketQueue
    for sock in (socket(wait=5, upgraded=False), socket(wait=5, upgraded=True)):
        written = Written(sock)
        writer = asyncio.ensure_future(eio_tuning.poll(sock))
        await parked(sock)
        if sock.upgraded:
            sock.queue.put_nowait(Packet(text="first"))  # queued, the writer not run yet
        await eio_tuning.send(sock, Packet(text="a"))
        assert written.seen == [("queued", "a")]  # behind what waits (or a long-poll)
        assert [p.text for p in await writer] == (["first", "a"] if sock.upgraded else ["a"])
    sock = socket(upgraded=True)  # nobody polls: no writer parked
    written = Written(sock)
    await eio_tuning.send(sock, Packet(text="b"))
    assert written.seen == [("queued", "b")]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
async def test_frames_are_the_bytes_aiohttps_writer_writes(size: int) -> None:
    from aiohttp._websocket.writer import WebSocketWriter
    from aiohttp.http_websocket import WSMsgType

    class Transport:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> None:
            self.data += data

        def is_closing(self) -> bool:
            return False

    transport = Transport()
    protocol = SimpleNamespace(_reading_paused=False)
    writer = WebSocketWriter(protocol, transport)  # type: ignore[arg-type]
    payload = ("é" * size).encode()[:size]
    await writer.send_frame(payload, WSMsgType.TEXT)
    assert eio_tuning._text_frame(payload) == transport.data


# --- the ping: a timer per socket, as the library's task per socket --------------------------


def pinged(schedule: Any, interval: float = 0.02) -> Any:
    """A socket whose ``schedule_ping`` is ``schedule``, with the library's ``send``."""
    server = SimpleNamespace(ping_interval=interval, ping_timeout=5)
    server.start_background_task = lambda target: asyncio.ensure_future(target())
    sock = SimpleNamespace(
        server=server, queue=eio_tuning.PacketQueue(), last_ping=1.0, closing=False, closed=False
    )
    for name in ("_send_ping", "send", "check_ping_timeout"):
        setattr(sock, name, MethodType(getattr(async_socket.AsyncSocket, name), sock))
    sock.schedule_ping = MethodType(schedule, sock)
    return sock


@pytest.mark.parametrize("schedule", sorted(PINGS))
async def test_one_ping_per_cycle_after_the_interval(schedule: str) -> None:
    loop = asyncio.get_running_loop()
    sock = pinged(PINGS[schedule])
    started = loop.time()
    sock.schedule_ping()
    sock.schedule_ping()  # before the PONG: no second ping
    first = await asyncio.wait_for(sock.queue.get(), 1)
    assert first.packet_type == eio_packet.PING and loop.time() - started >= 0.02
    assert time.time() - sock.last_ping < 1  # the PONG's deadline runs from now
    sock.schedule_ping()  # the PONG came: the next cycle
    assert (await asyncio.wait_for(sock.queue.get(), 1)).packet_type == eio_packet.PING
    assert sock.queue.empty()


@pytest.mark.parametrize("schedule", sorted(PINGS))
async def test_no_ping_for_a_socket_closed_meanwhile(schedule: str) -> None:
    sock = pinged(PINGS[schedule], interval=0.01)
    sock.schedule_ping()
    sock.closed = True
    sock.last_ping = None
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sock.queue.get(), 0.1)
    assert sock.last_ping is None
