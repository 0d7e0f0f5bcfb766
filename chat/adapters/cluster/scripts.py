"""Lua scripts on the cluster: sent by SHA through ``Cluster.send`` (so batched and retried
like any command), and loaded on a node the first time it is missing there."""

from __future__ import annotations

import hashlib
from collections.abc import Coroutine, Sequence
from typing import Any

from chat.adapters.cluster.client import Cluster


class Script:
    """One script, bound to the cluster client.  Every key of a call must be in the slot of
    the first (one hash tag): the script runs on that key's master."""

    def __init__(self, cluster: Cluster, source: str) -> None:
        self._cluster = cluster
        self.source = source
        # The SHA Redis computes for SCRIPT LOAD / EVALSHA (what redis-py's Script does).
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        cluster.register(self.sha, source)

    def __call__(
        self,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        durable: bool = False,
        what: str = "script",
    ) -> Coroutine[Any, Any, Any]:
        """``Cluster.send`` of ``EVALSHA``: the same guarantees (``durable`` included).  The
        coroutine of the send itself, not a wrapper around it: scripts are on the hot path."""
        evalsha = ("EVALSHA", self.sha, len(keys), *keys, *args)
        return self._cluster.send(keys[0], *evalsha, durable=durable, what=what)
