"""The cluster client's own pipelining: every command sent in one event-loop iteration leaves
in one write and one round trip per master (``Batcher``), durable writes of a batch share one
``WAIT``, and a script a node lacks is loaded there and only its calls sent again.

Our own pipelining on redis-py's connections, not its ClusterPipeline, whose per-command
overhead exceeds the write it saves.  Nothing here retries: a command whose master is unknown
or whose connection failed gets a retriable exception, and ``Cluster.send`` retries it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, ConnectionError, NoScriptError, ResponseError

from chat.adapters.batching import Batcher
from chat.adapters.redis_common import COMMAND_TIMEOUT, pack
from chat.errors import unavailable

#: Batches in flight per master at once; more wait their turn instead of failing the pool.
CONNECTIONS_PER_NODE = 48


@dataclass(frozen=True)
class Command:
    key: str  # routes the command: the master of this key's slot
    args: tuple[Any, ...]
    durable: bool = False


class Pipeline:
    def __init__(
        self,
        client: RedisCluster,
        *,
        replica_wait_ms: int,
        has_replica: Callable[[ClusterNode], bool],
    ) -> None:
        self._client = client
        self._wait_ms = replica_wait_ms
        self._has_replica = has_replica
        self._scripts: dict[str, str] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}  # connections in use per master
        self._batch: Batcher[Command, Any] = Batcher(self._flush)
        #: The future of one command's reply (an error reply is its exception); a bound
        #: method of the batcher, not a wrapper: this is every cluster command's way out.
        self.enqueue = self._batch.enqueue

    def register(self, sha: str, source: str) -> None:
        """A script the pipeline may have to load on a node that lacks it."""
        self._scripts[sha] = source

    def master_of(self, key: str) -> ClusterNode:
        node = self._client.get_node_from_key(key)
        if node is None:
            raise ClusterDownError(f"no master for {key}")
        return node

    async def close(self) -> None:
        await self._batch.close()

    async def _flush(self, commands: list[Command]) -> list[Any]:
        results: list[Any] = [None] * len(commands)
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        for index, command in enumerate(commands):
            try:
                node = self.master_of(command.key)
            except Exception as exc:  # no master for the slot (a failover): retried by send()
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
            await self._on_node(node, loads)
            again = await self._send_group(node, [group[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _send_group(self, node: ClusterNode, group: list[Command]) -> list[Any]:
        durable = any(c.durable for c in group) and self._has_replica(node)
        wait = [("WAIT", 1, self._wait_ms)] if durable else []
        replies = await self._on_node(node, [*(c.args for c in group), *wait])
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

    async def _on_node(self, node: ClusterNode, commands: Sequence[Sequence[Any]]) -> list[Any]:
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
                    packed = pack(commands)
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
