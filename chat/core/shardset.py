"""The pub/sub shard set as one record of truth (issue 15): the operator's ``Admin`` changes
it, each node's ``Follower`` steps its broker along.

A change is three steps of one epoch, each entered only once every live node (a running
presence lease) acknowledged the one before: ``receive`` (on old and new owners, publish on
the old), ``publish`` (on the new owner), ``steady`` (old subscriptions dropped).  Why that
order loses and doubles nothing: ``chat/adapters/shards/layout.py``.  A node that died stops
counting when its lease lapses; a node that starts mid-change starts on the current step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from chat.config import SHARD_NAME
from chat.models import MAX_SHARD_WEIGHT, PUBLISH, RECEIVE, STEADY, Layout
from chat.ports import Probe, ShardSetStore, ShardSwitch, Step

log = logging.getLogger(__name__)

#: The order of the steps of one epoch (a steady epoch is the end of its change).
_RANK = {RECEIVE: 0, PUBLISH: 1, STEADY: 2}

LiveNodes = Callable[[], Awaitable[list[str]]]


class Refused(Exception):
    """A change the admin refused; nothing was written."""


class NotAcknowledged(Exception):
    """The change did not end here: some live nodes did not reach a step in time (it stays at
    that step), or another coordinator drives it."""


def reached(ack: Step | None, step: Step) -> bool:
    return ack is not None and (ack[0], _RANK.get(ack[1], -1)) >= (step[0], _RANK[step[1]])


def check_url(name: str, url: str) -> None:
    """The rules of CHAT_SHARDS, for one shard given to ``chat shards add``."""
    if not SHARD_NAME.fullmatch(name):
        raise Refused(f"{name!r} is not a shard name (letters, digits, '_', '.', '-'; 63 at most)")
    if "@" in url:  # never echoed: it may hold a password
        raise Refused(
            "the URL holds credentials (not shown): the record never stores them; nodes use "
            "CHAT_SHARDS_USERNAME/_PASSWORD (or CHAT_REDIS_*)"
        )
    parts = urlsplit(url)
    if parts.query:
        raise Refused("no ?options in a shard URL; see CHAT_REDIS_*")
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise Refused(f"{url!r} is not a redis:// or rediss:// URL")


class Admin:
    """What ``chat shards`` does.  ``live_nodes`` lists the nodes with a running lease."""

    def __init__(
        self,
        store: ShardSetStore,
        live_nodes: LiveNodes,
        probe: Probe,
        *,
        wait: float = 60.0,
        poll: float = 0.2,
    ) -> None:
        self._store, self._live, self._probe = store, live_nodes, probe
        self.wait, self._poll = wait, poll

    async def current(self) -> Layout:
        layout = await self._store.read()
        if layout is None:
            raise Refused("no shard set recorded yet: start a node (it records CHAT_SHARDS)")
        return layout

    async def status(self) -> tuple[Layout, dict[str, Step | None]]:
        """The record and, per live node, the step it acknowledged (None: none yet)."""
        layout, acks, live = await asyncio.gather(self.current(), self._store.acks(), self._live())
        return layout, {node: acks.get(node) for node in live}

    async def add(self, name: str, url: str, weight: int = 1) -> Layout:
        check_url(name, url)
        if not 1 <= weight <= MAX_SHARD_WEIGHT:
            raise Refused(f"a weight is 1..{MAX_SHARD_WEIGHT} (the share of channels it takes)")
        current = await self._idle()
        if name in current.shards:
            raise Refused(f"shard {name!r} exists already ({current.shards[name]})")
        if url in current.shards.values():
            raise Refused(f"{url} is shard {_name_of(current, url)!r} already")
        if not await self._probe(url):
            raise Refused(f"{url} does not answer PING: not added")
        weights = {**current.weights, name: weight} if weight != 1 else current.weights
        return await self._change(current, {**current.shards, name: url}, weights)

    async def remove(self, name: str) -> Layout:
        current = await self._idle()
        if name not in current.shards:
            raise Refused(f"no shard {name!r}; the shards are {', '.join(sorted(current.shards))}")
        if len(current.shards) == 1:
            raise Refused(f"{name!r} is the last shard: a deployment needs one")
        kept = {n: u for n, u in current.shards.items() if n != name}
        return await self._change(current, kept, current.weights)

    async def resume(self) -> Layout:
        """Drive an unfinished change to its end (after a timeout, or a lost coordinator)."""
        return await self._drive(await self.current())

    async def _idle(self) -> Layout:
        current = await self.current()
        if current.phase != STEADY:
            raise Refused(
                f"a change is running (epoch {current.epoch}, phase {current.phase}): "
                "run `chat shards resume` to finish it first"
            )
        return current

    async def _change(
        self, current: Layout, shards: Mapping[str, str], weights: Mapping[str, int]
    ) -> Layout:
        # The weights of both sets while the change runs: the old ring must stay the same.
        first = Layout(current.epoch + 1, dict(shards), dict(current.shards), RECEIVE, weights)
        if not await self._store.write(first, current.step):
            raise Refused("another change started meanwhile: see `chat shards status`")
        log.info("shard set: epoch %d started: %s", first.epoch, sorted(shards))
        return await self._drive(first)

    async def _drive(self, layout: Layout) -> Layout:
        while True:
            live = await self.wait_for(layout.step)
            if layout.phase == STEADY:
                # Nodes gone since: their acknowledgements would pile up over the deployments.
                await self._store.forget(set(await self._store.acks()) - set(live))
                return layout
            following = (
                Layout(layout.epoch, layout.shards, layout.previous, PUBLISH, layout.weights)
                if layout.phase == RECEIVE
                else Layout(layout.epoch, layout.shards, weights=_kept(layout))
            )
            if not await self._store.write(following, layout.step):
                # Not a refusal: the change runs on, driven by another `chat shards resume`.
                raise NotAcknowledged(
                    "another coordinator moved this change on meanwhile: see `chat shards status`"
                )
            log.info("shard set: epoch %d now %s", layout.epoch, following.phase)
            layout = following

    async def wait_for(self, step: Step) -> list[str]:
        """Until every live node acknowledged ``step`` (or a later one), at most ``wait`` s;
        the live nodes."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait
        while True:
            acks, live = await asyncio.gather(self._store.acks(), self._live())
            missing = [node for node in live if not reached(acks.get(node), step)]
            if not missing:
                return live
            if loop.time() >= give_up:
                raise NotAcknowledged(
                    f"nodes {', '.join(missing)} did not reach epoch {step[0]} phase {step[1]} "
                    f"within {self.wait:.0f} s; the change stays there: fix them (or wait for "
                    "their leases to lapse), then run `chat shards resume`"
                )
            await asyncio.sleep(self._poll)  # remote state: nothing to await but the store


def _kept(layout: Layout) -> dict[str, int]:
    return {n: w for n, w in layout.weights.items() if n in layout.shards}


def _name_of(layout: Layout, url: str) -> str:
    return next(name for name, known in layout.shards.items() if known == url)


class Follower:
    """Runs in each node: steps the broker along the record, then acknowledges each step.

    ``prepare`` (before the shard listeners start) reads the record, or creates it from
    ``CHAT_SHARDS``; ``start`` (once they run) acknowledges the step and reads the record every
    ``every`` seconds (one GET): the record changes a few times a year, a second's delay is
    nothing beside the coordinator's waits.
    """

    def __init__(
        self,
        store: ShardSetStore,
        switch: ShardSwitch,
        node_id: str,
        configured: Mapping[str, str],
        *,
        every: float = 1.0,
    ) -> None:
        self._store, self._switch, self.node_id = store, switch, node_id
        self._configured = dict(configured)
        self._every = every
        self.acked: Step | None = None
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        layout = await self._store.read()
        if layout is None:
            created = Layout(1, self._configured)
            if await self._store.write(created, None):
                log.info("shard set recorded from CHAT_SHARDS: %s", sorted(self._configured))
            layout = await self._store.read()  # ours, or the one another node wrote first
            assert layout is not None
        elif dict(layout.shards) != self._configured:
            log.warning(
                "CHAT_SHARDS differs from the recorded shard set (epoch %d: %s); the record "
                "wins (`chat shards` changes it)", layout.epoch, sorted(layout.shards),
            )  # fmt: skip
        self._switch.adopt(layout)

    async def start(self) -> None:
        await self.follow()
        self._task = asyncio.create_task(self._run(), name="shardset-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def follow(self) -> None:
        """One round: step the broker to the record if it moved, acknowledge once it is
        there (a step the broker could not confirm is tried again next round)."""
        layout = await self._store.read()
        if layout is not None and layout.step != self._switch.layout.step:
            if not await self._switch.apply(layout):
                log.warning("shard set: epoch %d %s not confirmed yet", *layout.step)
                return
            log.info("shard set: now on epoch %d %s", *layout.step)
        # Every round, not only on a change: one HSET a second, and an acknowledgement lost
        # (a failover, a record restored from a backup) is written again.
        step = self._switch.layout.step
        await self._store.ack(self.node_id, step)
        self.acked = step

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.follow()
            except Exception as exc:  # the cluster failing over: next round
                log.warning("shard set: reading the record failed: %r", exc)

    def status(self) -> dict[str, object]:
        layout = self._switch.layout
        return {"epoch": layout.epoch, "phase": layout.phase, "acked": self.acked is not None}
