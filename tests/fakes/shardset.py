"""``ShardSetStore`` in memory, honest to ``chat/adapters/cluster/shardset.py`` (one record
shared by every node of a test, a compare-and-set on its step), and ``MemorySwitch``, a
broker as the follower of the shard set sees it (``ShardSwitch``)."""

from __future__ import annotations

from collections.abc import Collection

from chat.models import Layout


class MemoryShardSet:
    def __init__(self) -> None:
        self.record: bytes | None = None  # stored encoded, as the cluster does
        self.acked: dict[str, tuple[int, str]] = {}
        self.writes = 0

    async def read(self) -> Layout | None:
        return None if self.record is None else Layout.decode(self.record)

    async def write(self, layout: Layout, expected: tuple[int, str] | None) -> bool:
        current = await self.read()
        if (None if current is None else current.step) != expected:
            return False
        self.record = layout.encode()
        self.writes += 1
        return True

    async def ack(self, node_id: str, step: tuple[int, str]) -> None:
        self.acked[node_id] = step

    async def acks(self) -> dict[str, tuple[int, str]]:
        return dict(self.acked)

    async def forget(self, node_ids: Collection[str]) -> None:
        for node_id in node_ids:
            self.acked.pop(node_id, None)


class MemorySwitch:
    """Records every layout it is stepped to; ``refuse`` makes ``apply`` answer False (a
    subscription not confirmed in time) that many times."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self.applied: list[Layout] = []
        self.refuse = 0
        self.started = False

    @property
    def layout(self) -> Layout:
        return self._layout

    def adopt(self, layout: Layout) -> None:
        assert not self.started, "adopt() after start"
        self._layout = layout

    async def apply(self, layout: Layout) -> bool:
        if self.refuse:
            self.refuse -= 1
            return False
        self._layout = layout
        self.applied.append(layout)
        return True
