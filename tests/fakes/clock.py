"""A clock the test moves by hand: the fakes read time from it where Redis reads ``TIME``."""

from __future__ import annotations

import time


class Clock:
    def __init__(self, start: float | None = None) -> None:
        # From now by default: tokens are checked by PyJWT against the real time.
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        """Seconds, like ``time.time`` (what the core's ``clock`` parameters take)."""
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)

    def advance(self, seconds: float) -> None:
        self.now += seconds
