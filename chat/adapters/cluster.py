"""The Redis Cluster client of the node: one client, its lifecycle, and calls that survive a
failover.

redis-py retries a command a few times, but a master's failover takes the cluster's node
timeout plus an election, longer than those retries last.  ``run`` therefore retries
retriable errors with a jittered backoff, refreshing the slot map between attempts, until
its own deadline (``CHAT_CLUSTER_DEADLINE``, at least the node timeout + 5 s), and then
answers the client a retriable ``unavailable``: never a silent partial result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.adapters.redis_common import connection_kwargs, reconnect_backoff
from chat.errors import unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors that a failover or a topology change produces and that go away by themselves.
#: (MovedError is an AskError; BusyLoadingError and MaxConnectionsError are ConnectionErrors;
#: the builtin TimeoutError is an OSError.)
RETRIABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    TryAgainError,
    AskError,
    ReadOnlyError,
    SlotNotCoveredError,
    OSError,
)
#: ... and, while the cluster is still being created, "cluster not covered" complaints.
STARTUP_ERRORS: tuple[type[BaseException], ...] = (*RETRIABLE, RedisClusterException)


class Cluster:
    def __init__(
        self, nodes: Sequence[tuple[str, int]], *, node_id: str, deadline: float = 20.0
    ) -> None:
        self.deadline = deadline
        self.client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            max_connections=64,
            **connection_kwargs(f"chat-{node_id}"),
        )
        self._refreshing: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        #: Live replicas of each master ("host:port"), as CLUSTER NODES lists them.
        self._replicas: dict[str, int] = {}

    async def start(self, timeout: float) -> None:
        """Connect, waiting (with a log line now and then) for a cluster that is still being
        formed: on a fresh deployment the nodes may start before the cluster exists."""
        loop = asyncio.get_running_loop()
        give_up, backoff, failures = loop.time() + timeout, reconnect_backoff(), 0
        while True:
            try:
                await asyncio.wait_for(self.client.initialize(), max(1.0, give_up - loop.time()))
                await self._read_topology()
                break
            except STARTUP_ERRORS as exc:
                failures += 1
                if loop.time() >= give_up:
                    raise RuntimeError(
                        f"Redis Cluster not usable after {timeout:.0f} s: {exc}"
                    ) from exc
                if failures % 10 == 1:
                    log.warning("cluster: waiting for the Redis Cluster: %s", exc)
                await asyncio.sleep(backoff.compute(failures))
        self._watcher = asyncio.create_task(self._watch_topology(), name="cluster-topology")

    async def stop(self) -> None:
        for task in (self._refreshing, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.client.aclose()

    async def healthy(self) -> bool:
        """The cluster answers and reports every slot served."""
        try:
            info = await asyncio.wait_for(
                self.client.execute_command("CLUSTER INFO", target_nodes=RedisCluster.RANDOM),
                timeout=1.0,
            )
        except RETRIABLE:  # includes OSError, hence the builtin TimeoutError of wait_for
            return False
        # redis-py parses CLUSTER INFO into a dict of strings.
        return isinstance(info, dict) and info.get("cluster_state") == "ok"

    async def run(self, op: Callable[[RedisCluster], Awaitable[T]], what: str) -> T:
        """Run ``op`` until it succeeds, a non-retriable error, or the deadline."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.deadline
        backoff, failures = reconnect_backoff(), 0
        while True:
            try:
                return await op(self.client)
            except RETRIABLE as exc:
                failures += 1
                delay = backoff.compute(failures)
                if loop.time() + delay > give_up:
                    log.warning("cluster: %s gave up after %d attempts: %r", what, failures, exc)
                    raise unavailable("storage is failing over, retry") from exc
                if failures == 1:
                    log.info("cluster: %s failed (%r), retrying", what, exc)
                await self.refresh()
                await asyncio.sleep(delay)

    async def refresh(self) -> None:
        """Reload the slot map, once at a time however many callers ask."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._reload_slots())
        await asyncio.shield(self._refreshing)

    async def _reload_slots(self) -> None:
        try:
            await self.client.nodes_manager.initialize()
            await self._read_topology()
        except Exception as exc:  # the next attempt of the caller tries again
            log.debug("cluster: slot map refresh failed: %r", exc)

    async def _watch_topology(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self._read_topology()
            except Exception as exc:
                log.debug("cluster: topology read failed: %r", exc)

    async def _read_topology(self) -> None:
        """Count each master's live replicas from CLUSTER NODES.

        Not from the slot map: Valkey and Redis leave a replica out of CLUSTER SLOTS while it
        reports itself "loading", which a replica of an empty master does until the first
        write, so the slot map would say "no replicas" and writes would skip WAIT.  Failed
        (and suspected) replicas are not counted: writes then proceed without waiting for a
        replica that is gone, instead of failing until it is back.
        """
        nodes = await self.client.cluster_nodes()
        names = {}
        for address, info in nodes.items():
            names[info["node_id"]] = [address]
            if info.get("hostname"):
                names[info["node_id"]].append(f"{info['hostname']}:{address.rsplit(':', 1)[1]}")
        counts: dict[str, int] = {}
        for info in nodes.values():
            flags = str(info["flags"])
            if "slave" in flags and "fail" not in flags and info["master_id"] in names:
                for name in names[info["master_id"]]:
                    counts[name] = counts.get(name, 0) + 1
        self._replicas = counts

    def has_replica(self, key: str) -> bool:
        """Whether the master serving ``key`` has a live replica (so writes must WAIT)."""
        node = self.client.get_node_from_key(key)
        return node is not None and self._replicas.get(node.name, 0) > 0

    async def on_master(self, key: str, *commands: Sequence[Any]) -> list[Any]:
        """Send ``commands`` on ONE connection to the master of ``key``'s slot.

        ``WAIT`` counts the replicas that acknowledged the writes of *its own connection*,
        so it must follow the write on the same connection; the cluster client's pools do not
        promise that.  Replies come back in order; error replies are returned, not raised.
        """
        node = self.client.get_node_from_key(key)
        if node is None:
            raise ClusterDownError(f"no master for {key}")
        conn = node.acquire_connection()
        try:
            await conn.send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # the reply was read; the connection is fine
                    replies.append(exc)
            return replies
        finally:
            # read_response() already closed the connection if it failed mid-reply.
            node.release(conn)


class Script:
    """A Lua script sent by SHA, loaded on the node the first time it is missing there."""

    def __init__(self, cluster: Cluster, source: str) -> None:
        self._cluster = cluster
        self._source = source
        self._script = cluster.client.register_script(source)

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._script(keys=list(keys), args=list(args))

    async def on_master(
        self, keys: Sequence[str], args: Sequence[Any], *after: Sequence[Any]
    ) -> list[Any]:
        """Run on the master of ``keys[0]``, followed on the same connection by ``after``."""
        call = ("EVALSHA", self.sha, len(keys), *keys, *args)
        replies = await self._cluster.on_master(keys[0], call, *after)
        if isinstance(replies[0], NoScriptError):
            load = ("SCRIPT", "LOAD", self._source)
            replies = (await self._cluster.on_master(keys[0], load, call, *after))[1:]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
