"""The per-user send limit: a token bucket in the cluster, spent locally in small leases.

Asking the cluster for every message would cost each send a round trip.  Instead a node takes
a few tokens at once (up to a quarter of the burst, at most 5) and spends them on the user's
next sends here; a lease it has not spent within a second is dropped (not returned, so a user
moving between nodes meets the limit a little early, never late).  The limit therefore holds
across all nodes, as the bucket is one, at the price of a granularity of a few tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chat.errors import rate_limited
from chat.ports import Limits

LEASE_SECONDS = 1.0
LEASES_MAX = 100_000


class SendLimiter:
    def __init__(
        self,
        limits: Limits,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._rate = rate
        self._burst = burst
        self._chunk = max(1, min(5, burst // 4))
        self._clock = clock
        self._leases: dict[str, tuple[int, float]] = {}  # user -> (tokens left, expiry)

    async def take(self, user_id: str) -> None:
        """Spend one token of the user's, or raise ``rate_limited`` (with the wait)."""
        now = self._clock()
        left, expires = self._leases.get(user_id, (0, 0.0))
        if left > 0 and now < expires:
            self._leases[user_id] = (left - 1, expires)
            return
        granted, wait = await self._limits.take(
            "send", user_id, self._rate, self._burst, want=self._chunk
        )
        if not granted:
            raise rate_limited(wait)
        if len(self._leases) >= LEASES_MAX:
            self._leases.clear()  # a crude bound: losing leases only costs round trips
        self._leases[user_id] = (granted - 1, self._clock() + LEASE_SECONDS)
