"""Where a channel lives while the set of pub/sub shards changes (issue 15), in two phases as
Phoenix.PubSub changes its pool size.

A ``Layout`` is the shard set in force (``shards``) and, while a change runs, the set being left
(``previous``) with the change's ``phase``.  Its ``Routing`` answers, per channel, the shards to
receive it on and the one shard to publish it on:

=========  =============================  ==================
phase      receive on                     publish on
=========  =============================  ==================
steady     owner(shards)                  owner(shards)
receive    owner(previous), owner(shards)  owner(previous)
publish    owner(previous), owner(shards)  owner(shards)
=========  =============================  ==================

Invariant (nothing lost, nothing doubled): every node reaches ``receive`` before any node
reaches ``publish``, and every node reaches ``publish`` before any node returns to
``steady`` (the coordinator waits for every live node between the steps).  So whichever phase
a publisher is in, every follower of the channel is subscribed on the shard it publishes on;
and a payload is published on exactly one shard, so a follower subscribed on two receives it
once.  Only channels whose owner changes take part: consistent hashing moves about 1/N of them.
"""

from __future__ import annotations

from chat.models import PHASES, PUBLISH, RECEIVE, STEADY, Layout
from shardring import HashRing

# The record itself is a model (chat/models.py): the core (chat/core/shardset.py) reads and
# writes it; the rings are this adapter's.

__all__ = ["PHASES", "PUBLISH", "RECEIVE", "STEADY", "Layout", "Routing"]


class Routing:
    """A layout's rings: where each channel is received and published."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._ring = HashRing(layout.ring(layout.shards))
        self._previous = HashRing(layout.ring(layout.previous)) if layout.previous else None
        self._publish = self._ring if layout.phase != RECEIVE else self._previous

    @property
    def changing(self) -> bool:
        return self._previous is not None

    def publish_on(self, channel: str) -> str:
        assert self._publish is not None
        return self._publish.get(channel)

    def receive_on(self, channel: str) -> tuple[str, ...]:
        owner = self._ring.get(channel)
        if self._previous is None:
            return (owner,)
        before = self._previous.get(channel)
        return (owner,) if before == owner else (before, owner)
