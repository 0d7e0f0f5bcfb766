"""Storage in the Redis Cluster (history, users, rooms).  Only this adapter talks to it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError

from chat import keys
from chat.adapters.redis_common import connection_kwargs


class ClusterStore:
    def __init__(self, nodes: Sequence[tuple[str, int]], *, node_id: str) -> None:
        self.client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            max_connections=64,
            **connection_kwargs(f"chat-{node_id}"),
        )

    async def start(self, timeout: float) -> None:
        await asyncio.wait_for(self.client.initialize(), timeout)

    async def stop(self) -> None:
        await self.client.aclose()

    async def healthy(self) -> bool:
        """The cluster answers and reports every slot served."""
        try:
            info = await asyncio.wait_for(
                self.client.execute_command("CLUSTER INFO", target_nodes=RedisCluster.RANDOM),
                timeout=1.0,
            )
        except (RedisError, OSError, TimeoutError):
            return False
        # redis-py parses CLUSTER INFO into a dict of strings.
        return isinstance(info, dict) and info.get("cluster_state") == "ok"

    async def next_seq(self, room: str) -> int:
        return int(await self.client.incr(keys.room_seq_key(room)))
