"""One-off questions to a shard for the operator's ``chat shards``: does it answer (before it
joins the set), and how many channels it carries (``PUBSUB CHANNELS``: a scan of the shard's
channel table, fine for an operator command, never on a node's path)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chat.adapters.redis_common import RedisAccess, connection_kwargs

TIMEOUT = 3.0


def _client(url: str, access: RedisAccess) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, **connection_kwargs("chat-admin"), **access.url_kwargs(url))


def prober(access: RedisAccess) -> Callable[[str], Awaitable[bool]]:
    async def ping(url: str) -> bool:
        client = _client(url, access)
        try:
            return bool(await asyncio.wait_for(client.ping(), TIMEOUT))
        except (RedisError, OSError):  # OSError: the builtin TimeoutError of wait_for too
            return False
        finally:
            await client.aclose()

    return ping


async def channel_count(url: str, access: RedisAccess) -> int | None:
    """Channels subscribed on the shard (by any node); None if it does not answer."""
    client = _client(url, access)
    try:
        return len(await asyncio.wait_for(client.pubsub_channels(), TIMEOUT))
    except (RedisError, OSError):
        return None
    finally:
        await client.aclose()
