"""The composition root's lifecycle: one cleanup context per resource, started in order,
stopped in reverse, every one stopped even when another fails to stop or to start."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.web_app import CleanupError

from chat.app import resources


class Part:
    """A resource that records its start and stop in the shared journal."""

    def __init__(self, name, journal, *, fail_start=False, fail_stop=False, sync=False):
        self.name, self.journal = name, journal
        self.fail_start, self.fail_stop, self.sync = fail_start, fail_stop, sync

    def _record(self, what, fail):
        self.journal.append(f"{what} {self.name}")
        if fail:
            raise RuntimeError(f"{self.name} {what} failed")

    async def start(self, *_):
        self._record("start", self.fail_start)

    async def stop(self):
        self._record("stop", self.fail_stop)

    async def close(self):
        self._record("stop", self.fail_stop)

    def close_sync(self):
        self._record("stop", self.fail_stop)


def fake_node(journal, **faults):
    def part(name):
        return Part(name, journal, **faults.get(name, {}))

    hasher = part("hasher")
    hasher.close = hasher.close_sync  # the hasher's close is synchronous
    lifetimes = part("lifetimes")
    lifetimes.start = lambda: journal.append("start lifetimes")
    follower = part("follower")
    follower.prepare = lambda: journal.append("read shard set")
    node = SimpleNamespace(
        settings=SimpleNamespace(node_id="n1"),
        sockets=SimpleNamespace(sio=SimpleNamespace(shutdown=part("sio").stop)),
        hasher=hasher, cluster=part("cluster"), ordering=part("ordering"),
        inbound=part("inbound"), broker=part("shards"), presence=part("presence"),
        lifetimes=lifetimes, follower=follower, draining=False,
    )  # fmt: skip
    node.drain = lambda: journal.append("drain")
    return node


async def run_app(node):
    app = web.Application()
    app.cleanup_ctx.extend(resources(node))
    runner = web.AppRunner(app)
    try:
        await runner.setup()
    finally:
        await runner.cleanup()


STARTS = [
    "start cluster", "read shard set", "start shards", "start presence", "start follower",
    "start lifetimes",
]  # fmt: skip
STOPS = [
    "drain", "stop lifetimes", "stop follower", "stop presence", "stop shards", "stop inbound",
    "stop ordering", "stop cluster", "stop hasher", "stop sio",
]  # fmt: skip


async def test_resources_start_in_order_and_stop_in_reverse():
    journal = []
    await run_app(fake_node(journal))
    assert journal == STARTS + STOPS


async def test_a_failing_stop_does_not_skip_the_others():
    journal = []
    node = fake_node(journal, shards={"fail_stop": True}, ordering={"fail_stop": True})
    with pytest.raises(CleanupError):
        await run_app(node)
    assert journal == STARTS + STOPS  # both failures reported, nothing skipped


async def test_a_failed_start_stops_what_had_started_and_itself():
    journal = []
    with pytest.raises(RuntimeError, match="shards start failed"):
        await run_app(fake_node(journal, shards={"fail_start": True}))
    # The shards' own stop runs too: a start may leave connections behind.
    assert journal == [
        "start cluster", "read shard set", "start shards", "stop shards", "stop inbound",
        "stop ordering", "stop cluster", "stop hasher", "stop sio",
    ]  # fmt: skip
