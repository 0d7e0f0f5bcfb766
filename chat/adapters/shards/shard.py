"""One pub/sub shard: its subscriber connection, its subscription record (``record.py``), its
listener task and its publish client (``publisher.py``), owned by one object.

The listener is the only reader of the subscriber connection.  It reconnects forever with a
jittered backoff (capped at 2 s, reset once a connection is up and subscribed) and, after
every reconnect, subscribes again from *our* record of wanted channels: redis-py's memory of
a connection dies with the connection, ours does not.  A connection that stays silent is
pinged; one that does not answer within ``dead_after`` seconds is dropped and replaced.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Collection, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry

from chat.adapters.batching import Batcher
from chat.adapters.redis_common import (
    RedisAccess,
    connection_kwargs,
    reconnect_backoff,
    refusal,
)
from chat.adapters.shards.publisher import Publisher
from chat.adapters.shards.record import SubscriptionRecord
from chat.ports import MessageHandler

log = logging.getLogger(__name__)

#: Channels per SUBSCRIBE command: keeps one command (and its reply burst) bounded.
BATCH = 1000


class Shard:
    def __init__(
        self,
        name: str,
        url: str,
        handler: MessageHandler,
        *,
        node_id: str,
        ping_interval: float = 1.0,
        dead_after: float = 5.0,
        access: RedisAccess | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._access = access or RedisAccess()
        #: Why the last connection attempt was refused for good (a wrong password, an untrusted
        #: certificate); the start-up reports it instead of waiting out a timeout.
        self.refused: str | None = None
        self._handler = handler
        self._node_id = node_id
        self._ping_interval = ping_interval
        self._heard = 0.0  # loop time of the last reply on the subscriber connection
        self._stalled = False  # a PING went unanswered for an interval on this connection
        self._dead_after = dead_after
        self._record = SubscriptionRecord()
        self._conn: Connection | None = None
        self._write_lock = asyncio.Lock()
        self._flush_scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # replaced on every state change; see wait_until
        self.reconnects = 0
        self._publisher = Publisher(url, name=name, node_id=node_id, access=self._access)
        #: Called (in a task) once a replaced connection has every wanted channel again.
        self.on_resubscribed: Callable[[frozenset[str]], None] | None = None
        self._publishes: Batcher[tuple[str, bytes], Any] = Batcher(self._publisher.send_batch)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"shard-listener-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # The listener's finally-block closes the connection; wait for it.
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._record.close()
        await self._publishes.close()
        await self._publisher.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def is_ready(self) -> bool:
        return self._conn is not None and self._record.complete

    async def wait_until(self, predicate: Callable[[Shard], bool]) -> None:
        """Return once ``predicate(self)`` holds; re-checked on every connection or
        subscription change, so callers await the event instead of polling."""
        while not predicate(self):
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- subscriptions -----------------------------------------------------------------------

    def want(self, channels: Iterable[str]) -> None:
        """Add channels to the record and subscribe them (batched with concurrent callers)."""
        self._record.want(channels)
        self._schedule_flush()

    def unwant(self, channels: Iterable[str]) -> None:
        self._record.unwant(channels)
        self._notify()
        self._schedule_flush()

    async def wait_subscribed(self, channels: Collection[str]) -> None:
        """Return once the server confirmed every channel (across reconnects if need be)."""
        pending = self._record.waiters(channels)
        if pending:
            # shield: one caller timing out must not cancel a waiter others share.
            await asyncio.gather(*(asyncio.shield(w) for w in pending))

    def generation(self, channel: str) -> int | None:
        """The number of the connection the channel is subscribed on; None while it is not."""
        return self.reconnects if channel in self._record.confirmed else None

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._record.confirmed)

    def _schedule_flush(self) -> None:
        # Coalesce every want/unwant of this loop iteration into one SUBSCRIBE/UNSUBSCRIBE.
        if not self._flush_scheduled and self._conn is not None:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        conn = self._conn
        if conn is not None:
            task = asyncio.create_task(self._flush(conn))
            task.add_done_callback(_ignore_result)

    async def _flush(self, conn: Connection) -> None:
        """Bring the server's subscriptions on ``conn`` in line with the record.

        What to send is the record's (``record.py``).  A write error closes the connection;
        the listener then reconnects and flushes from scratch.
        """
        try:
            async with self._write_lock:
                if conn is not self._conn or not conn.is_connected:
                    # Gone or replaced: the listener flushes a fresh connection itself.
                    # (Sending on a closed redis-py connection would silently reopen it.)
                    return
                add, drop = self._record.to_send()
                if drop:  # no longer live from here on: a change wait_until looks at
                    self._notify()
                for command, batch in _batches(("SUBSCRIBE", add), ("UNSUBSCRIBE", drop)):
                    await conn.send_command(command, *batch, check_health=False)
        except Exception as exc:  # the listener notices the dead connection and reconnects
            log.debug("shard %s: subscription write failed: %r", self.name, exc)

    # --- listener ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff, failures = reconnect_backoff(), 0
        while True:
            conn = self._new_connection()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                self._attach(conn)
                await self._flush(conn)
                failures = await self._read_loop(conn, failures)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._report(exc, failures)
            finally:
                self._detach()
                await conn.disconnect(nowait=True)
            await asyncio.sleep(backoff.compute(failures))

    def _report(self, exc: Exception, failures: int) -> None:
        level = logging.WARNING if failures <= 3 or failures % 30 == 0 else logging.DEBUG
        if (refused := refusal(exc)) is None:
            log.log(level, "shard %s: pub/sub connection lost: %s", self.name, exc)
            return
        self.refused = f"{refused[0]} to shard {self.name} failed: {refused[1]}"
        log.log(level, "%s", self.refused)
        self._notify()

    def _new_connection(self) -> Connection:
        kwargs: dict[str, Any] = dict(aioredis.connection.parse_url(self.url))
        kwargs.update(connection_kwargs(f"chat-{self._node_id}-sub"))
        kwargs.update(self._access.url_kwargs(self.url))
        # No library retries: this loop owns reconnection and its backoff.
        kwargs["retry"] = Retry(reconnect_backoff(), retries=0)
        cls: type[Connection] = kwargs.pop("connection_class", Connection)
        return cls(**kwargs)

    def _attach(self, conn: Connection) -> None:
        self._conn = conn
        self._stalled = False
        self.refused = None
        self._record.new_connection()
        self._notify()

    def _detach(self) -> None:
        if self._conn is not None:
            self.reconnects += 1
        self._conn = None
        self._record.new_connection()
        self._notify()

    async def _read_loop(self, conn: Connection, failures: int) -> int:
        loop = asyncio.get_running_loop()
        self._heard = loop.time()
        watchdog = asyncio.create_task(self._probe_silence(conn), name=f"shard-{self.name}-probe")
        try:
            while True:
                # No timeout per read (a timer per message received): the watchdog probes a
                # silent connection and closes a dead one, which ends this read.
                # push_request: with RESP3, subscription replies and messages are push frames.
                reply = await conn.read_response(timeout=math.inf, push_request=True)
                self._heard = loop.time()
                if self._stalled:
                    self._stalled = False
                    log.info("shard %s: answering again", self.name)
                    self._resubscribed()
                await self._on_reply(reply)
                if failures and self._record.complete:
                    failures = 0  # up and fully subscribed: the next outage starts afresh
                    log.info("shard %s: pub/sub connection restored", self.name)
                    self._resubscribed()
        except Exception as exc:
            if watchdog.done() and not watchdog.cancelled():
                raise ConnectionError(watchdog.result()) from exc
            raise
        finally:
            watchdog.cancel()

    def _resubscribed(self) -> None:
        if self.on_resubscribed is not None:  # what was published meanwhile
            self.on_resubscribed(frozenset(self._record.confirmed))

    async def _probe_silence(self, conn: Connection) -> str:
        """PING a connection silent for ``ping_interval``; close it once it has been silent
        for ``dead_after`` (a paused server keeps TCP open) and say why."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            silent = loop.time() - self._heard
            if silent >= self._dead_after:
                await conn.disconnect(nowait=True)
                return f"no reply for {silent:.1f} s"
            # A PING unanswered for a whole interval: the server stalled, and whatever was
            # published meanwhile may have failed (publishes are bounded): catch up once it
            # answers again (see the read loop).
            self._stalled = self._stalled or silent >= self._ping_interval * 1.9
            if silent >= self._ping_interval * 0.9:
                async with self._write_lock:
                    await conn.send_command("PING", check_health=False)

    async def _on_reply(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return  # PONG outside subscribed mode
        kind = reply[0]
        if kind == b"message":
            await self._handler(reply[1].decode(), reply[2])
        elif kind == b"subscribe":
            self._record.subscribed(reply[1].decode())
            self._notify()
        elif kind == b"unsubscribe" and reply[1] is not None:
            self._record.unsubscribed(reply[1].decode())
            self._notify()

    # --- publishing --------------------------------------------------------------------------

    async def numsub(self, channels: list[str]) -> dict[str, int]:
        return await self._publisher.numsub(channels)

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    async def publish(self, channel: str, payload: bytes) -> int:
        receivers: int = await self.enqueue_publish(channel, payload)
        return receivers

    def enqueue_publish(self, channel: str, payload: bytes) -> asyncio.Future[Any]:
        """The future of a publish batched with this loop iteration's others."""
        return self._publishes.enqueue((channel, payload))


def _batches(*commands: tuple[str, list[str]]) -> Iterable[tuple[str, list[str]]]:
    for command, channels in commands:
        for start in range(0, len(channels), BATCH):
            yield command, channels[start : start + BATCH]


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
