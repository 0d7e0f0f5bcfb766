"""Reference counts of channel interest on one node.

A channel is subscribed on its shard while at least one local user of it exists; many
sockets of one user, or many members of one room, cost one subscription per node.

Leaf module: imports nothing of the project.
"""

from __future__ import annotations

from collections.abc import Iterable


class RefCounts:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def acquire(self, channels: Iterable[str]) -> list[str]:
        """Count one more interest in each channel; return those that went from 0 to 1."""
        first = []
        for channel in channels:
            count = self._counts.get(channel, 0)
            self._counts[channel] = count + 1
            if count == 0:
                first.append(channel)
        return first

    def release(self, channels: Iterable[str]) -> list[str]:
        """Drop one interest in each channel; return those that went from 1 to 0.

        Releasing a channel nobody holds is ignored: a disconnect handler may run for a
        socket whose connect handler failed half-way.
        """
        last = []
        for channel in channels:
            count = self._counts.get(channel, 0)
            if count <= 1:
                if self._counts.pop(channel, None) is not None:
                    last.append(channel)
            else:
                self._counts[channel] = count - 1
        return last

    def count(self, channel: str) -> int:
        return self._counts.get(channel, 0)

    def __contains__(self, channel: object) -> bool:
        return channel in self._counts

    def __len__(self) -> int:
        return len(self._counts)

    def channels(self) -> list[str]:
        return list(self._counts)
