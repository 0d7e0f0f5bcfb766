"""The publishing side of one pub/sub shard: a small connection pool of its own (publishes
never wait behind the subscriber connection's reads), and one loop iteration's publishes sent
in one write and one round trip (the ``Batcher`` that feeds it belongs to the ``Shard``)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry

from chat.adapters.redis_common import (
    COMMAND_TIMEOUT,
    RedisAccess,
    connection_kwargs,
    reconnect_backoff,
)


class Publisher:
    def __init__(self, url: str, *, node_id: str, connections: int, access: RedisAccess) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=connections,
            timeout=5.0,
            **connection_kwargs(f"chat-{node_id}-pub", per_command_timeout=False),
            **access.url_kwargs(url),
        )
        self._redis = aioredis.Redis(
            connection_pool=pool, retry=Retry(reconnect_backoff(), retries=3)
        )

    async def close(self) -> None:
        await self._redis.aclose()

    async def numsub(self, channels: list[str]) -> dict[str, int]:
        pairs = await self._redis.pubsub_numsub(*channels)
        return {name.decode() if isinstance(name, bytes) else name: int(n) for name, n in pairs}

    async def send_batch(self, items: list[tuple[str, bytes]]) -> list[Any]:
        """The publishes of one loop iteration on one connection: one write, one round trip.
        (On the connection directly: redis-py's Pipeline object costs more than the write.)"""
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                packed = conn.pack_commands([("PUBLISH", ch, payload) for ch, payload in items])
                await conn.send_packed_command(packed, check_health=False)
                return [await conn.read_response() for _ in items]
        except BaseException:
            await conn.disconnect(nowait=True)  # unread replies: never reuse it
            raise
        finally:
            await pool.release(conn)
