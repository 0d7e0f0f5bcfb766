"""The operator's one-off publish (``chat/adapters/shards/announce.py``, for ``chat tokens
revoke``) against real shards: it reaches every shard a node may follow the channel on, the
two owners while the shard set changes, and says so when a shard does not take it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis_fixtures import access
from stack import new_user_id

from chat.adapters.redis_common import connection_kwargs
from chat.adapters.shards.announce import AnnounceFailed, announcer
from chat.adapters.shards.layout import RECEIVE, Layout, Routing
from devstack.cluster import RedisFleet

TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def listening(fleet: RedisFleet, url: str, channel: str) -> AsyncIterator[asyncio.Queue]:
    """A subscriber of ``channel`` on the shard at ``url``: what it receives, in a queue."""
    client = aioredis.Redis.from_url(
        url, **connection_kwargs("test"), **access(fleet).url_kwargs(url)
    )
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def read() -> None:
        async for item in pubsub.listen():
            if item["type"] == "message":
                got.put_nowait(item["data"])

    reader = asyncio.create_task(read())
    try:
        yield got
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await pubsub.aclose()
        await client.aclose()


async def test_a_steady_set_publishes_on_the_channels_owner(redis_clean: RedisFleet):
    layout = Layout(0, redis_clean.shard_urls)
    channel = f"user:{new_user_id()}"
    (owner,) = Routing(layout).receive_on(channel)
    async with listening(redis_clean, layout.shards[owner], channel) as got:
        await announcer(layout, access(redis_clean))(channel, b"notice")
        assert await asyncio.wait_for(got.get(), TIMEOUT) == b"notice"


async def test_a_changing_set_publishes_on_both_owners_of_a_moving_channel(
    redis_clean: RedisFleet,
):
    urls = redis_clean.shard_urls
    leaving = sorted(urls)[0]
    remaining = {name: url for name, url in urls.items() if name != leaving}
    layout = Layout(1, remaining, previous=urls, phase=RECEIVE)  # removing one shard
    routing = Routing(layout)
    channel = next(
        c for c in (f"user:{new_user_id()}" for _ in range(1000)) if len(routing.receive_on(c)) == 2
    )
    names = routing.receive_on(channel)
    async with (
        listening(redis_clean, urls[names[0]], channel) as first,
        listening(redis_clean, urls[names[1]], channel) as second,
    ):
        await announcer(layout, access(redis_clean))(channel, b"notice")
        for got in (first, second):
            assert await asyncio.wait_for(got.get(), TIMEOUT) == b"notice"


async def test_a_shard_that_does_not_answer_fails_the_announcement(redis_clean: RedisFleet):
    layout = Layout(0, {"gone": "redis://127.0.0.1:1"})
    with pytest.raises(AnnounceFailed, match="gone"):
        await announcer(layout, access(redis_clean))("user:x", b"notice")
