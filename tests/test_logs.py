"""Log hygiene: every record through the scrubbing handler exactly once, floods bounded."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import aiohttp
from stack import start_stack

from chat.logs import FloodGuard

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXZhbHVl"


def test_socketio_records_are_printed_once_and_scrubbed():
    """As ``chat serve`` does it: logging first, then the Socket.IO server, whose libraries
    would add a handler of their own (printing every record a second time, raw)."""
    script = textwrap.dedent(
        f"""
        import logging
        from chat import logs
        logs.setup("INFO", False, "n1", secrets=("hunter2-redis-password",))
        from chat.adapters.sio import SocketServer
        SocketServer(origins=(), max_payload=1000)
        for name in ("engineio.server", "socketio.server"):
            logging.getLogger(name).error("%s saw {TOKEN} and hunter2-redis-password", name)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    for name in ("engineio.server", "socketio.server"):
        mine = [line for line in lines if f"{name} saw" in line]
        assert len(mine) == 1, done.stderr
        assert "<token>" in mine[0] and "<hidden>" in mine[0]
    assert TOKEN not in done.stderr and "hunter2" not in done.stderr


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


async def test_malformed_packets_in_a_loop_add_a_bounded_number_of_log_lines(
    redis_fleet, tmp_path, jwt_secret
):
    """One client, hundreds of malformed Socket.IO packets over long-polling and over one
    websocket: the node's log grows by a few dozen lines, each printed once."""
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=1) as stack:
        log = tmp_path / "node0.log"
        before = len(log.read_text().splitlines())
        url = stack.url(0) + "/socket.io/?EIO=4&transport="
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "polling") as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            garbage = "\x1e".join(["4zz", '42["x"', "4{}"] * 100)  # 300 Engine.IO messages
            async with http.post(f"{url}polling&sid={sid}", data=garbage) as resp:
                assert resp.status == 200
            async with http.ws_connect(url.replace("http", "ws", 1) + "websocket") as ws:
                await ws.receive()  # the Engine.IO open packet
                for _ in range(100):
                    for packet in ("4zz", '42["x"', "4{}"):
                        await ws.send_str(packet)
                # A CONNECT without a token: refused once all before it was read, and every
                # record is written (each handler flushes) before the refusal is sent.
                await ws.send_str("40")
                assert (await ws.receive()).data.startswith("44")
        lines = log.read_text().splitlines()[before:]
    assert len(lines) < 80, "\n".join(lines)
    errors = [line for line in lines if "message async handler error" in line]
    assert 1 <= len(errors) <= 12, "\n".join(lines)
    assert all("engineio.server" in line for line in errors), "printed once, by our handler"
