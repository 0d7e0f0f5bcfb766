"""The unit tier: nodes and stores in memory (tests/fakes), no servers, no processes."""

from __future__ import annotations

import pytest
from fakes.node import MemoryNode, World


@pytest.fixture
def world() -> World:
    world = World()
    for user_id in ("ann", "bob", "cid", "dan"):
        world.accounts.add(user_id)
    return world


@pytest.fixture
def node(world: World) -> MemoryNode:
    return MemoryNode(world, "n1")


@pytest.fixture
def other(world: World) -> MemoryNode:
    """A second node on the same shards and cluster."""
    return MemoryNode(world, "n2")
