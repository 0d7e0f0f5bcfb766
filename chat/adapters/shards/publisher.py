"""The publishing side of one pub/sub shard: a pipelined connection of its own (``resp.py``:
publishes never wait behind the subscriber connection's reads), and one loop iteration's
publishes sent in one write (the ``Batcher`` that feeds it belongs to the ``Shard``).

Bounded: a publish is what a send waits for after its durable write, so a shard that does not
answer (paused, partitioned, overloaded, refusing connections) must never hold a send.  A
batch fails after ``PUBLISH_TIMEOUT``, whatever it waited on (the connect and handshake, the
replies), and its callers are told at once; a connection whose oldest batch waited that long
is replaced.

Kept, not lost: what failed waits in a backlog (bounded by ``BACKLOG_MAX`` payloads and
``BACKLOG_BYTES``; beyond that new failures are dropped, not kept) and is published again, in
order, once the shard answers: a retry every ``RETRY_AFTER`` seconds.  While anything waits
there, later publishes queue behind it (and fail for their callers at once), so payloads
still leave in the order they were published.  Receivers drop duplicates of a message by its
seq; what the backlog could not keep, their ordering recovers from history
(``Ordering.catch_up`` after a stall or a replaced connection, the gap fill on the next
message, the client's ``sync``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry

from chat.adapters.redis_common import RedisAccess, connection_kwargs, reconnect_backoff
from chat.adapters.resp import RespSlot

log = logging.getLogger(__name__)

#: Seconds one batch of publishes may take, connecting included.
PUBLISH_TIMEOUT = 1.0
#: Seconds between two tries of the backlog while the shard does not answer.
RETRY_AFTER = 1.0
#: Payloads, and their bytes, kept for a retry (~ a minute of a busy node's publishes).
BACKLOG_MAX = 20_000
BACKLOG_BYTES = 16 * 1024 * 1024
#: Payloads per retried batch.
RETRY_BATCH = 500

Publish = tuple[str, bytes]


class ShardUnavailable(ConnectionError):
    """The shard did not take the publish now; it is kept for a retry."""


class Publisher:
    def __init__(self, url: str, *, name: str, node_id: str, access: RedisAccess) -> None:
        self._name = name
        self._backlog: deque[Publish] = deque()
        self._backlog_bytes = 0
        self._retrying: asyncio.Task[None] | None = None
        self.failures = 0  # batches that failed
        self.dropped = 0  # failed payloads a full backlog could not keep
        parts = urlsplit(url)
        self._slot = RespSlot(
            parts.hostname or "localhost", parts.port or 6379,
            access=replace(access, tls=parts.scheme == "rediss"),
            client_name=f"chat-{node_id}-pub", timeout=PUBLISH_TIMEOUT,
            connect_timeout=PUBLISH_TIMEOUT,
        )  # fmt: skip
        # Only for ``numsub`` (operator commands): publishes never use its pool.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=2,
            timeout=5.0,
            **connection_kwargs(f"chat-{node_id}-pub", per_command_timeout=False),
            **access.url_kwargs(url),
        )
        self._redis = aioredis.Redis(
            connection_pool=pool, retry=Retry(reconnect_backoff(), retries=3)
        )

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.gather(self._retrying, return_exceptions=True)
        self._slot.close()
        await self._redis.aclose()

    @property
    def waiting(self) -> int:
        return len(self._backlog)

    async def numsub(self, channels: list[str]) -> dict[str, int]:
        pairs = await self._redis.pubsub_numsub(*channels)
        return {name.decode() if isinstance(name, bytes) else name: int(n) for name, n in pairs}

    async def send_batch(self, items: list[Publish]) -> list[Any]:
        """PUBLISH each item; the receivers of each.  Raises at once while older payloads wait
        for a retry, and within ``PUBLISH_TIMEOUT`` when the shard does not answer; either
        way the items are kept and published later."""
        if self._backlog:
            self._keep(items)
            raise ShardUnavailable(f"shard {self._name}: publishes wait for a retry")
        try:
            return await self._send(items)
        except Exception:
            self._keep(items)
            raise

    async def _send(self, items: list[Publish]) -> list[Any]:
        """One write on the pipelined connection (opened first if need be)."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                conn = self._slot.conn or await self._slot.connect()
                replies = await conn.send([("PUBLISH", c, p) for c, p in items])
            for reply in replies:  # an error reply (a missing permission): the batch failed
                if isinstance(reply, Exception):
                    raise reply
            return replies
        except Exception:
            self.failures += 1
            raise

    def _keep(self, items: list[Publish]) -> None:
        room = max(0, BACKLOG_MAX - len(self._backlog))
        if len(items) > room:  # the newest go: the retry pops what it sent from the left
            self.dropped += len(items) - room
            log.warning(
                "shard %s: backlog full, %d publishes dropped", self._name, len(items) - room
            )
            items = items[:room]
        self._backlog.extend(items)
        if self._retrying is None:
            self._retrying = asyncio.create_task(self._retry(), name=f"publish-retry-{self._name}")

    async def _retry(self) -> None:
        """Publish the backlog in order, a batch at a time, once the shard answers."""
        try:
            log.warning("shard %s: publishes failing, %d kept", self._name, len(self._backlog))
            while self._backlog:
                await asyncio.sleep(RETRY_AFTER)
                while self._backlog:
                    batch = [self._backlog[i] for i in range(min(RETRY_BATCH, len(self._backlog)))]
                    try:
                        await self._send(batch)
                    except Exception:
                        break  # still sick: the next try after RETRY_AFTER
                    for _ in batch:  # only what was sent: new items may have been appended
                        channel, payload = self._backlog.popleft()
                        self._backlog_bytes -= len(channel) + len(payload)
            log.info("shard %s: publishing again, backlog sent", self._name)
        finally:
            self._retrying = None
