"""Log hygiene: every record through the scrubbing handler exactly once, floods bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import aiohttp
from stack import start_stack

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
