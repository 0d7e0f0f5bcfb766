"""Redis Cluster resharding under load: a master+replica pair is added and given its share of
the slots, then another pair is drained and removed, while senders keep sending and readers
keep reading; nothing acknowledged is lost and no send fails for good."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from pathlib import Path

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from sioclient import Client
from stack import Stack, register, start_stack
from test_accounts import call
from test_faults import all_messages

from chat import keys
from devstack.cluster import RedisFleet

pytestmark = pytest.mark.slow

#: Rooms, one per band of slots: every range of slots a reshard moves carries some of them.
ROOMS = 32
#: A sender's pause between two messages: load that leaves the 2 test cores room to reshard.
PACE = 0.1
LIMITS = {
    "send_rate": "100000",
    "send_burst": "100000",
    "event_limits": "*=100000/100000",
    "rooms_per_user": "1000",
    "rooms_created_per_user": "1000",
}


def fast_dir() -> Path | None:
    """Where the fleet keeps its files: in memory where possible, since every slot moved
    rewrites (and fsyncs) nodes.conf on each node, which on a disk doubles a reshard's time."""
    shm = Path("/dev/shm")  # noqa: S108 - the fleet makes its own private temp dir in it
    return shm if shm.is_dir() else None


def spread_rooms(count: int) -> list[str]:
    band = REDIS_CLUSTER_HASH_SLOTS // count
    rooms: dict[int, str] = {}
    while len(rooms) < count:
        rid = f"r{secrets.token_hex(5)}"
        rooms.setdefault(key_slot(keys.room_seq_key(rid).encode()) // band, rid)
    return list(rooms.values())


class Sender:
    """Sends to one room until stopped, each message retried with the same cid while the
    answer is ``unavailable`` (as a client does) until acknowledged; anything else is a
    failure."""

    def __init__(self, client: Client, room: str, tag: str, progress: asyncio.Condition):
        self.client, self.room, self.tag, self.progress = client, room, tag, progress
        self.acked: list[dict] = []
        self.retriable = 0
        self.failures: list[dict] = []
        self.slowest = 0.0  # seconds from a message's first try to its ack
        self.stopped = False

    async def run(self) -> None:
        for n in itertools.count():
            if self.stopped:  # only between messages: every message begun ends acknowledged
                return
            payload = {"room": self.room, "text": f"{self.tag}{n}", "cid": f"{self.tag}{n}"}
            began = asyncio.get_running_loop().time()
            while not (ack := await self.client.call("send", payload, timeout=30))["ok"]:
                if ack["error"]["code"] != "unavailable":
                    self.failures.append(ack)
                    return
                self.retriable += 1
                await asyncio.sleep(0.05)  # a client's retry delay
            self.acked.append(ack["message"])
            self.slowest = max(self.slowest, asyncio.get_running_loop().time() - began)
            async with self.progress:
                self.progress.notify_all()
            await asyncio.sleep(PACE)


class HistoryReader:
    """Reads the newest page of each room in turn over REST, from both nodes, until stopped;
    every page must be a run of consecutive seqs."""

    def __init__(self, stack: Stack, token: str, rooms: list[str]):
        self.stack, self.token, self.rooms = stack, token, rooms
        self.reads = 0
        self.failures: list[tuple[int, object]] = []
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        for n in itertools.count():
            if self.stopped.is_set():
                return
            room = self.rooms[n % len(self.rooms)]
            url = self.stack.url(n % 2) + f"/api/rooms/{room}/messages?limit=20"
            status, page, _ = await call("GET", url, token=self.token)
            seqs = [m["seq"] for m in page["messages"]] if status == 200 else []
            if status != 200 or seqs != list(range(seqs[0], seqs[0] + len(seqs)) if seqs else []):
                self.failures.append((status, page))
            self.reads += 1
            await asyncio.sleep(PACE / 5)  # a busy reader, not a flood


def owners(fleet: RedisFleet, rooms: list[str]) -> dict[str, int]:
    """The port of the master serving each room's slot."""
    return {room: fleet.master_for_key(keys.room_seq_key(room)).port for room in rooms}


async def test_adding_and_removing_cluster_masters_under_load_loses_nothing(
    make_fleet, tmp_path, jwt_secret
):
    fleet: RedisFleet = make_fleet(shards=2, data_dir=fast_dir())
    with start_stack(fleet, tmp_path, jwt_secret, nodes=2, **LIMITS) as stack:
        writers = [await register(stack.url(i)) for i in range(2)]
        reader = await register(stack.url(1))
        rooms = spread_rooms(ROOMS)
        clients = [await Client().connect(stack.url(i), u.token) for i, u in enumerate(writers)]
        listener = await Client().connect(stack.url(0), reader.token)
        for i, room in enumerate(rooms):
            body = {"id": room, "private": False}
            status, _, _ = await call(
                "POST", stack.url(0) + "/api/rooms", body, writers[i % 2].token
            )
            assert status == 201
            for client in (clients[i % 2], listener):
                assert (await client.call("join", {"room": room}))["ok"]

        progress = asyncio.Condition()
        senders = [Sender(clients[i % 2], r, f"{i}-", progress) for i, r in enumerate(rooms)]
        history = HistoryReader(stack, reader.token, rooms)
        tasks = [asyncio.create_task(t.run()) for t in (*senders, history)]

        async def more(count: int) -> None:
            """Wait until every sender has ``count`` more messages acknowledged."""
            goal = [len(s.acked) + count for s in senders]
            async with asyncio.timeout(60), progress:
                await progress.wait_for(
                    lambda: (
                        all(len(s.acked) >= g for s, g in zip(senders, goal, strict=True))
                        or any(s.failures for s in senders)
                    )
                )
            assert [s.failures for s in senders if s.failures] == []

        def totals() -> tuple[int, int]:
            """Messages acknowledged and history pages read so far."""
            return sum(len(s.acked) for s in senders), history.reads

        await more(3)
        before = owners(fleet, rooms)
        began, done = asyncio.get_running_loop().time(), [totals()]
        master, _replica = await asyncio.to_thread(fleet.add_pair)
        took, done = [asyncio.get_running_loop().time() - began], [*done, totals()]
        grown = owners(fleet, rooms)
        moved_in = [r for r in rooms if grown[r] == master.port]
        assert moved_in and all(before[r] != master.port for r in rooms)
        await more(3)

        drained = next(p for p in fleet.masters() if p is not master)
        on_drained = [r for r in rooms if grown[r] == drained.port]
        began, done = asyncio.get_running_loop().time(), [*done, totals()]
        removed = await asyncio.to_thread(fleet.remove_pair, drained)
        took.append(asyncio.get_running_loop().time() - began)
        done.append(totals())
        assert on_drained and len(removed) == 2
        shrunk = owners(fleet, rooms)
        assert drained.port not in shrunk.values()
        await more(3)

        for sender in senders:
            sender.stopped = True
        history.stopped.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*tasks)

        retriable = sum(s.retriable for s in senders)
        acked = sum(len(s.acked) for s in senders)
        print(
            f"{acked} acked, {retriable} retriable answers, {history.reads} history reads; "
            f"{len(moved_in)} rooms moved to the new master, {len(on_drained)} off the drained; "
            f"adding took {took[0]:.1f} s, removing {took[1]:.1f} s; "
            f"slowest ack {max(s.slowest for s in senders):.2f} s"
        )
        assert [s.failures for s in senders if s.failures] == []
        assert history.failures == []
        # Sends were acknowledged and history read while each reshard ran.
        for (acks0, reads0), (acks1, reads1) in (done[0:2], done[2:4]):
            assert acks1 > acks0 and reads1 > reads0, done
        for sender in senders:
            stored = await all_messages(stack, reader, sender.room)
            assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1))
            # Every message acked once, and stored once (cid retries included).
            assert [m["id"] for m in stored] == [m["id"] for m in sender.acked]
        live: dict[str, list[int]] = {}
        for message in listener.pending("message"):
            live.setdefault(message["room"], []).append(message["seq"])
        for room in rooms:
            seqs = live.get(room, [])
            assert seqs and all(a < b for a, b in itertools.pairwise(seqs)), room
        for client in (*clients, listener):
            await client.close()
