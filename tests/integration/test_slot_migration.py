"""The cluster client while a room's slot moves to another master, step by step as
``valkey-cli --cluster reshard`` moves it: the room's appends and reads wait (TRYAGAIN, then
ASK), then follow the slot (MOVED) to the new master, where the script is loaded; nothing is
lost or numbered twice."""

from __future__ import annotations

import asyncio
import logging
import secrets

from redis.crc import key_slot
from redis_fixtures import access

from chat import keys
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.models import UserRef
from devstack.cluster import RedisFleet
from devstack.cluster_cli import node_id
from devstack.redis_server import RedisProcess

ANN = UserRef("ann", "Ann")


class Retries(logging.Handler):
    """The cluster client's "<what> failed (<error>), retrying" lines, as an awaitable."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.changed.set()

    async def seen(self, *words: str) -> None:
        async with asyncio.timeout(10):
            while not any(all(w in line for w in words) for line in self.lines):
                self.changed.clear()
                await self.changed.wait()


def migrate(source: RedisProcess, target: RedisProcess, *names: str) -> None:
    source.command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *names)


async def test_appends_and_reads_follow_a_room_whose_slot_moves(make_fleet, monkeypatch):
    fleet: RedisFleet = make_fleet(shards=0)
    nodes = [(p.host, p.port) for p in fleet.cluster]
    cluster = Cluster(nodes, node_id="test", access=access(fleet))
    await cluster.start(10)
    retries = Retries()
    logger = logging.getLogger("chat.adapters.cluster.client")
    logger.addHandler(retries)
    monkeypatch.setattr(logger, "level", logging.INFO)
    try:
        store = ClusterHistory(cluster)
        room = "r" + secrets.token_hex(4)

        async def append(n: int, token: str | None = None):
            return await store.append(f"m{n}", room, ANN, f"t{n}", None, token or f"k{n}")

        for n in range(1, 6):  # the script is loaded on the source master only
            await append(n)
        seq_key = keys.room_seq_key(room)
        slot = key_slot(seq_key.encode())
        source = fleet.master_for_key(seq_key)
        target = next(p for p in fleet.masters() if p is not source)
        ids = {p.port: node_id(p) for p in fleet.masters()}
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])

        # The seq key moved, the log not yet: the append script's keys are split.
        await asyncio.to_thread(migrate, source, target, seq_key)
        appending = asyncio.create_task(append(6))
        await retries.seen("append failed", "TryAgainError")

        # Every key moved, the slot not yet handed over: the source answers ASK.
        rest = source.command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        await asyncio.to_thread(migrate, source, target, *rest)
        reading = asyncio.create_task(store.page(room, before=None, after=None, limit=10))
        await retries.seen("history failed", "AskError")
        assert not appending.done() and not reading.done()

        for node in (target, source, *(p for p in fleet.masters() if p not in (source, target))):
            node.command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        # MOVED: the slot map is reloaded, and the script loaded on the new master.
        async with asyncio.timeout(10):
            (message, created), (page, more) = await asyncio.gather(appending, reading)
        assert (message.seq, created) == (6, True)
        assert [m.seq for m in page] in ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]) and not more
        assert cluster.master_of(seq_key).port == target.port
        assert await store.last_seq(room) == 6
        again, created = await append(99, token="k3")  # idempotency records moved too
        assert (again.seq, again.text, created) == (3, "t3", False)
        page, _ = await store.page(room, before=None, after=0, limit=10)
        assert [m.seq for m in page] == list(range(1, 7))
        fleet.wait_cluster_ok()
    finally:
        logger.removeHandler(retries)
        await cluster.stop()
