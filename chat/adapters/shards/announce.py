"""A one-off publish for an operator command (``chat tokens revoke``), which runs no broker:
the payload goes to every shard a node may follow the channel on (two while the shard set
changes, ``layout.py``), so every node that follows it hears it.  A repeated control is
harmless (a ``revoke`` ends sockets that are ending already), so publishing on both shards of
a moving channel costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chat.adapters.redis_common import RedisAccess, connection_kwargs
from chat.adapters.shards.layout import Layout, Routing

TIMEOUT = 3.0


class AnnounceFailed(ConnectionError):
    """A shard that carries the channel did not take the payload."""


def announcer(layout: Layout, access: RedisAccess) -> Callable[[str, bytes], Awaitable[None]]:
    """``announce(channel, payload)`` over the shards of ``layout`` (``service.Announce``)."""
    routing = Routing(layout)
    urls = layout.urls

    async def announce(channel: str, payload: bytes) -> None:
        names = routing.receive_on(channel)
        done = await asyncio.gather(*(_publish(urls[n], access, channel, payload) for n in names))
        failed = [name for name, ok in zip(names, done, strict=True) if not ok]
        if failed:
            raise AnnounceFailed(f"shard {', '.join(failed)} did not answer")

    return announce


async def _publish(url: str, access: RedisAccess, channel: str, payload: bytes) -> bool:
    client = aioredis.Redis.from_url(
        url, **connection_kwargs("chat-admin"), **access.url_kwargs(url)
    )
    try:
        await asyncio.wait_for(client.publish(channel, payload), TIMEOUT)
    except (RedisError, OSError):  # OSError: the builtin TimeoutError of wait_for too
        return False
    finally:
        await client.aclose()
    return True
