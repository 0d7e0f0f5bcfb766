"""``Limits`` in memory, honest to ``chat/adapters/cluster_limits.py``: token buckets refilled
at ``rate`` per second up to ``burst``, failure counters with a doubling (capped) cool-down,
the token denylist and ``once``; all on the clock the test moves."""

from __future__ import annotations

import math
from collections.abc import Mapping

from fakes.clock import Clock


class MemoryLimits:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        login_cooldown_s: float = 1.0,
        login_cooldown_max_s: float = 60.0,
    ) -> None:
        self.clock = clock or Clock()
        self._first, self._cap = login_cooldown_s, login_cooldown_max_s
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, when
        self.counters: dict[str, dict[str, float]] = {}
        self.revoked: dict[str, float] = {}
        self.onces: dict[tuple[str, str], float] = {}

    async def take(
        self, scope: str, ident: str, rate: float, burst: int, want: int = 1
    ) -> tuple[int, float]:
        now = self.clock()
        tokens, last = self.buckets.get((scope, ident), (float(burst), now))
        tokens = min(burst, tokens + max(0.0, now - last) * rate)
        if tokens < 1:
            return 0, math.ceil((1 - tokens) * 1000 / rate) / 1000
        granted = min(want, math.floor(tokens))
        self.buckets[(scope, ident)] = (tokens - granted, now)
        return granted, 0.0

    async def cooldown(self, op: str, counters: Mapping[str, int]) -> float:
        if op == "ok":
            for name in counters:
                self.counters.pop(name, None)
            return 0.0
        now, longest = self.clock(), 0.0
        for name, most in counters.items():
            record = self.counters.setdefault(name, {"fails": 0, "lockouts": 0, "until": 0.0})
            if record["until"] > now:
                longest = max(longest, record["until"] - now)
            elif op == "fail":
                record["fails"] += 1
                if record["fails"] >= most:
                    record["lockouts"] += 1
                    cool = min(self._cap, self._first * 2 ** (record["lockouts"] - 1))
                    record["fails"], record["until"] = 0, now + cool
                    longest = max(longest, cool)
        return longest

    async def revoke(self, jti: str, seconds: float) -> None:
        self.revoked[jti] = self.clock() + max(0.001, seconds)

    async def is_revoked(self, jti: str) -> bool:
        return self.revoked.get(jti, 0.0) > self.clock()

    async def once(self, scope: str, ident: str, seconds: float) -> bool:
        if self.onces.get((scope, ident), 0.0) > self.clock():
            return False
        self.onces[(scope, ident)] = self.clock() + max(0.001, seconds)
        return True
