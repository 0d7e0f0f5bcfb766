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
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MaxConnectionsError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.adapters.batching import Batcher
from chat.adapters.redis_common import (
    COMMAND_TIMEOUT,
    RedisAccess,
    connection_kwargs,
    reconnect_backoff,
    refusal,
)
from chat.errors import unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Batches in flight per master at once; more wait their turn instead of failing the pool.
CONNECTIONS_PER_NODE = 48

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
        self,
        nodes: Sequence[tuple[str, int]],
        *,
        node_id: str,
        deadline: float = 20.0,
        replica_wait_ms: int = 1000,
        access: RedisAccess | None = None,
    ) -> None:
        self.deadline = deadline
        self._wait_ms = replica_wait_ms
        self._scripts: dict[str, str] = {}
        access = access or RedisAccess()
        self.client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            max_connections=CONNECTIONS_PER_NODE + 32,  # head room for the few direct calls
            **connection_kwargs(f"chat-{node_id}", per_command_timeout=False),
            **access.kwargs(tls=access.tls),
            ssl=access.tls,
        )
        self._refreshing: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._started = False  # see run()
        self._slots: dict[str, asyncio.Semaphore] = {}  # connections in use per master
        self._batch: Batcher[Command, Any] = Batcher(self._pipeline)
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
                if (refused := refusal(exc)) is not None:  # waiting would not mend it
                    what, why = refused
                    raise RuntimeError(f"{what} to the Redis Cluster failed: {why}") from None
                failures += 1
                if loop.time() >= give_up:
                    raise RuntimeError(
                        f"Redis Cluster not usable after {timeout:.0f} s: {exc}"
                    ) from exc
                if failures % 10 == 1:
                    log.warning("cluster: waiting for the Redis Cluster: %s", exc)
                await asyncio.sleep(backoff.compute(failures))
        self._watcher = asyncio.create_task(self._watch_topology(), name="cluster-topology")
        self._started = True

    async def stop(self) -> None:
        for task in (self._refreshing, self._watcher):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._batch.close()
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
        if not self._started:  # start() failed (the clean-up of a failed start calls us)
            raise unavailable("storage is not connected")
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.deadline
        backoff, failures = reconnect_backoff(), 0
        while True:
            try:
                # One bound per attempt (the clients run without per-command timeouts).
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    return await op(self.client)
            except RETRIABLE as exc:
                failures += 1
                delay = backoff.compute(failures)
                if loop.time() + delay > give_up:
                    log.warning("cluster: %s gave up after %d attempts: %r", what, failures, exc)
                    raise unavailable("storage is failing over, retry") from exc
                if failures == 1:
                    log.info("cluster: %s failed (%r), retrying", what, exc)
                if not isinstance(exc, MaxConnectionsError):
                    # A busy pool says nothing about the topology; reloading the slot map
                    # would close connections that other calls are using right now.
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

    def master_of(self, key: str) -> ClusterNode:
        node = self.client.get_node_from_key(key)
        if node is None:
            raise ClusterDownError(f"no master for {key}")
        return node

    def has_replica(self, node: ClusterNode) -> bool:
        """Whether this master has a live replica (so writes must WAIT for it)."""
        return self._replicas.get(node.name, 0) > 0

    async def command(self, key: str, *args: Any, what: str = "command") -> Any:
        """``call``, retried through a failover (see ``run``): the usual way to talk to the
        cluster.  Replies are raw: bytes, lists, ints, and maps as dicts."""
        return await self.run(lambda _: self.call(key, *args), what)

    async def command_each(self, commands: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several ``(key, args)`` commands, sent together and retried together through a
        failover (each must be idempotent); replies in order."""

        async def attempt(_: Any) -> list[Any]:
            pending = [self._batch.enqueue(Command(key, tuple(args))) for key, args in commands]
            return list(await asyncio.gather(*pending))

        return await self.run(attempt, "commands")

    async def call(self, key: str, *args: Any, durable: bool = False) -> Any:
        """One command on the master of ``key``, sent with everything else issued in this
        loop iteration: one write and one round trip per master.  ``durable``: a write that
        counts only once a replica has it (where the master has one), checked by one ``WAIT``
        after the batch.  Replies are raw (no redis-py response callbacks); an error reply is
        raised."""
        return await self._batch.submit(Command(key, args, durable))

    def register(self, sha: str, source: str) -> None:
        """A script the pipeline may have to load on a node that lacks it."""
        self._scripts[sha] = source

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        results: list[Any] = [None] * len(commands)
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for index, command in enumerate(commands):
            try:
                node = self.master_of(command.key)
            except Exception as exc:  # no master for the slot (a failover): retried by run()
                results[index] = exc
                continue
            groups.setdefault(node.name, (node, []))[1].append(index)

        async def send(node: ClusterNode, indexes: list[int]) -> None:
            group = [commands[i] for i in indexes]
            try:
                replies = await self._on_master(node, group)
            except Exception as exc:  # the connection failed: each caller retries
                replies = [exc] * len(indexes)
            for i, reply in zip(indexes, replies, strict=True):
                results[i] = reply

        if len(groups) == 1:  # the common case at low rates: no task for the only master
            await send(*next(iter(groups.values())))
        else:
            await asyncio.gather(*(send(node, indexes) for node, indexes in groups.values()))
        return results

    async def _on_master(self, node: ClusterNode, group: list[Command]) -> list[Any]:
        """One master's share of a batch; a script the node lacks is loaded and its calls
        (only those: the others ran) sent again."""
        replies = await self._send_group(node, group)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            shas = {group[i].args[1] for i in missing}
            loads = [("SCRIPT", "LOAD", self._scripts[sha]) for sha in shas]
            await self.on_node(node, loads)
            again = await self._send_group(node, [group[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _send_group(self, node: ClusterNode, group: list[Command]) -> list[Any]:
        durable = any(c.durable for c in group) and self.has_replica(node)
        wait = [("WAIT", 1, self._wait_ms)] if durable else []
        replies = await self.on_node(node, [*(c.args for c in group), *wait])
        if not durable:
            return replies
        acked = replies.pop()
        if isinstance(acked, Exception) or acked < 1:
            late = unavailable("no replica acknowledged the write in time, retry")
            return [
                late if c.durable and not isinstance(r, Exception) else r
                for c, r in zip(group, replies, strict=True)
            ]
        return replies

    async def on_node(self, node: ClusterNode, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` on ONE connection to ``node``, replies in order (error replies
        are returned, not raised).

        ``WAIT`` counts the replicas that acknowledged the writes of *its own connection*,
        so it must follow the writes on the same connection; the cluster client's pools do not
        promise that.
        """
        async with self._slots.setdefault(node.name, asyncio.Semaphore(CONNECTIONS_PER_NODE)):
            return await self._on_connection(node, commands)

    async def _on_connection(
        self, node: ClusterNode, commands: Sequence[Sequence[Any]]
    ) -> list[Any]:
        conn = node.acquire_connection()
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                try:
                    packed = conn.pack_commands(commands)
                    await conn.send_packed_command(packed, check_health=False)
                except RuntimeError as exc:  # uvloop: the transport was closed under us
                    await conn.disconnect(nowait=True)
                    raise ConnectionError(f"connection to {node.name} closed: {exc}") from exc
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # the reply was read; the connection is fine
                        replies.append(exc)
            return replies
        except TimeoutError:
            await conn.disconnect(nowait=True)  # replies may still come: never reuse it
            raise
        finally:
            # read_response() already closed the connection if it failed mid-reply.
            node.release(conn)


@dataclass(frozen=True)
class Command:
    key: str  # routes the command: the master of this key's slot
    args: tuple[Any, ...]
    durable: bool = False


class Script:
    """A Lua script sent by SHA, batched with the commands of the same loop iteration, and
    loaded on a node the first time it is missing there."""

    def __init__(self, cluster: Cluster, source: str) -> None:
        self._cluster = cluster
        self.source = source
        self._script = cluster.client.register_script(source)
        cluster.register(self.sha, source)

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    def evalsha(self, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(
        self, keys: Sequence[str], args: Sequence[Any], *, durable: bool = False
    ) -> Any:
        return await self._cluster.call(keys[0], *self.evalsha(keys, args), durable=durable)
