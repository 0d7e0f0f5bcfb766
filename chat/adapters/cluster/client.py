"""The Redis Cluster client of the node: its connection and lifecycle, the slot map and the
live replicas of each master, and the one way the stores send a command.

Sending, the whole surface (the stores use nothing else):

- ``await cluster.send(key, *args, durable=False, what=...)``: one command, run on the master
  of ``key``'s slot (every key it names must share that slot: one hash tag).
    * batched: every command sent in the same event-loop iteration leaves in one write and
      one round trip per master (``pipeline.py``); a lone command leaves on the next
      iteration.  Several commands sent at once thus share the round trip: ``send_all``
      (no task per command, retried together) or a gather of sends (each retried on its
      own); either way none may rely on another having run.
    * retried through a failover: retriable errors (connection loss, ``CLUSTERDOWN``,
      ``MOVED``/``ASK``, ``READONLY``, ``TRYAGAIN``, timeouts) are retried with a jittered
      backoff, the slot map reloaded between attempts, until ``deadline``
      (``CHAT_CLUSTER_DEADLINE``: redis-py's own retries end before a failover does).  Then
      the caller gets ``unavailable`` (retriable by the client): never a silent partial
      result.  A command whose reply was lost may thus run twice: where a second run would
      matter, the command is idempotent or its script makes it so (the history's
      idempotency record).
    * raw replies: bytes, lists, ints, maps as dicts (no redis-py response callbacks); an
      error reply is raised as ``ResponseError``, not retried.
    * ``durable=True``: the reply is returned only once a replica has the write, where the
      master has a live replica (one ``WAIT`` after the batch, on the batch's connection).  If
      no replica acknowledges in time the caller gets ``unavailable``, not retried here: the
      write may have happened (which is why it must be idempotent).
- ``Script(cluster, source)(keys, args, durable=..., what=...)`` (``scripts.py``): ``send`` of
  ``EVALSHA``, with the same guarantees; the script is loaded on a node that lacks it.

Per command: one ``Command``, one future, no task, no timer: the pipeline answers every
attempt within ``COMMAND_TIMEOUT`` (its connections fail every batch in flight once the oldest
waited that long, and a sweeper fails whatever else is still unanswered then).  redis-py's
``RedisCluster`` keeps the slot map and serves the few direct calls (topology, scans,
health); the stores' commands never touch its pools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MaxConnectionsError,
    ReadOnlyError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat.adapters.cluster.pipeline import Command, Pipeline
from chat.adapters.redis_common import (
    RedisAccess,
    connection_kwargs,
    reconnect_backoff,
    refusal,
)
from chat.errors import unavailable

log = logging.getLogger(__name__)

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
        access = access or RedisAccess()
        self._redis = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            # Only the few direct calls (topology, scans, health) use redis-py's pools; the
            # stores' commands go through the pipeline's own connections.
            max_connections=32,
            **connection_kwargs(f"chat-{node_id}", per_command_timeout=False),
            **access.kwargs(tls=access.tls),
            ssl=access.tls,
        )
        self._refreshing: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._started = False  # see send()
        #: Live replicas of each master ("host:port"), as CLUSTER NODES lists them.
        self._replicas: dict[str, int] = {}
        self._pipeline = Pipeline(
            self._redis, replica_wait_ms=replica_wait_ms, has_replica=self.has_replica,
            access=access, client_name=f"chat-{node_id}",
        )  # fmt: skip
        self._enqueue = self._pipeline.enqueue
        self.register = self._pipeline.register
        self.master_of = self._pipeline.master_of

    async def start(self, timeout: float) -> None:
        """Connect, waiting (with a log line now and then) for a cluster that is still being
        formed: on a fresh deployment the nodes may start before the cluster exists."""
        loop = asyncio.get_running_loop()
        give_up, backoff, failures = loop.time() + timeout, reconnect_backoff(), 0
        while True:
            try:
                await asyncio.wait_for(self._redis.initialize(), max(1.0, give_up - loop.time()))
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
        await self._pipeline.close()
        await self._redis.aclose()

    async def healthy(self) -> bool:
        """The cluster answers and reports every slot served."""
        try:
            info = await asyncio.wait_for(
                self._redis.execute_command("CLUSTER INFO", target_nodes=RedisCluster.RANDOM),
                timeout=1.0,
            )
        except RETRIABLE:  # includes OSError, hence the builtin TimeoutError of wait_for
            return False
        # redis-py parses CLUSTER INFO into a dict of strings.
        return isinstance(info, dict) and info.get("cluster_state") == "ok"

    async def send(self, key: str, *args: Any, durable: bool = False, what: str = "command") -> Any:
        """One command on the master of ``key``: see the module docstring for every
        guarantee."""
        if not self._started:  # start() failed (the clean-up of a failed start calls us)
            raise unavailable("storage is not connected")
        command = Command(key, args, durable)
        give_up, failures = asyncio.get_running_loop().time() + self.deadline, 0
        while True:
            try:  # each attempt bounded by the pipeline (its sweeper)
                return await self._enqueue(command)
            except RETRIABLE as exc:
                failures += 1
                await self._before_retry(exc, failures, give_up, what)

    async def send_all(self, commands: Sequence[tuple[str, Sequence[Any]]], what: str) -> list[Any]:
        """``send`` of several ``(key, args)`` at once, in one round trip per master and with no
        task per command; retried together, so each must be idempotent.  Replies in order."""
        if not self._started:
            raise unavailable("storage is not connected")
        give_up, failures = asyncio.get_running_loop().time() + self.deadline, 0
        while True:
            try:
                pending = [self._enqueue(Command(key, tuple(args))) for key, args in commands]
                return list(await asyncio.gather(*pending))
            except RETRIABLE as exc:
                failures += 1
                await self._before_retry(exc, failures, give_up, what)

    async def scan(self, match: str, count: int = 1000) -> AsyncIterator[bytes]:
        """Every key matching ``match`` on every master (operator commands only: a full scan;
        not retried, the caller runs again)."""
        async for key in self._redis.scan_iter(match=match, count=count):
            yield key

    async def _before_retry(
        self, exc: BaseException, failures: int, give_up: float, what: str
    ) -> None:
        """Wait out the backoff before attempt ``failures + 1``, or give up at the deadline."""
        delay = reconnect_backoff().compute(failures)
        if asyncio.get_running_loop().time() + delay > give_up:
            log.warning("cluster: %s gave up after %d attempts: %r", what, failures, exc)
            raise unavailable("storage is failing over, retry") from exc
        if failures == 1:
            log.info("cluster: %s failed (%r), retrying", what, exc)
        if not isinstance(exc, MaxConnectionsError):
            # A busy pool says nothing about the topology; reloading the slot map would
            # close connections that other calls are using right now.
            await self.refresh()
        await asyncio.sleep(delay)

    async def refresh(self) -> None:
        """Reload the slot map, once at a time however many callers ask."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._reload_slots())
        await asyncio.shield(self._refreshing)

    async def _reload_slots(self) -> None:
        try:
            await self._redis.nodes_manager.initialize()
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
        nodes = await self._redis.cluster_nodes()
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

    def has_replica(self, node: ClusterNode) -> bool:
        """Whether this master has a live replica (so writes must WAIT for it)."""
        return self._replicas.get(node.name, 0) > 0
