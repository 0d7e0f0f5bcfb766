"""Log floods are bounded per call site (FloodGuard); the scrubbing handler and a node under a
flood of malformed packets: e2e/test_logs.py."""

from __future__ import annotations

import logging
import sys

from chat.logs import FloodGuard


def record(line: int = 1) -> logging.LogRecord:
    return logging.LogRecord("engineio.server", logging.ERROR, "x.py", line, "bad %s", ("p",), None)


def test_flood_guard_bounds_each_call_site_and_counts_what_it_dropped():
    now = [0.0]
    guard = FloodGuard(burst=3, period=10.0, clock=lambda: now[0])
    passed = [guard.filter(record()) for _ in range(100)]
    assert passed == [True] * 3 + [False] * 97
    assert guard.filter(record(line=2))  # another call site has its own budget
    now[0] += 10.0
    later = record()
    assert guard.filter(later)
    assert later.getMessage() == "bad p [97 more like this dropped]"
    assert not guard.filter(record())


def test_a_call_site_prints_one_traceback_a_while_then_one_line_summaries():
    guard = FloodGuard(burst=5, period=1.0, clock=lambda: 0.0)
    shown = []
    for i in range(3):
        try:
            raise ValueError(f"bad packet {i} 100%")
        except ValueError:
            rec = logging.LogRecord("engineio.server", 40, "x.py", 7, "%s failed", ("m",), None)
            rec.exc_info = sys.exc_info()
        assert guard.filter(rec)
        shown.append(rec)
    assert shown[0].exc_info is not None
    assert all(r.exc_info is None for r in shown[1:])
    assert shown[2].getMessage() == "m failed [ValueError: bad packet 2 100%; traceback as before]"
