"""What a socket's disconnect costs the Socket.IO manager with many sockets on the node:
python-socketio's own manager against this server's (chat/adapters/sio_server.py ``Manager``,
which keeps each socket's rooms instead of scanning the node's).  CPU time, one process.

    .venv/bin/python bench/disconnects.py --sockets 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script, from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import socketio

from chat.adapters.sio_server import Manager, Server


async def per_disconnect(manager: Any, server: type, sockets: int, gone: int) -> float:
    """µs of CPU per disconnect, with ``sockets`` connected, each in three rooms as a node's
    are (the lobby, its user's, its token's), ``gone`` of them leaving."""
    server(async_mode="aiohttp", client_manager=manager)
    sids = []
    for i in range(sockets):
        sid = await manager.connect(f"e{i}", "/")
        for room in ("room:lobby", f"user:u{i // 2}", f"jti:{i}"):
            manager.basic_enter_room(sid, "/", room)
        sids.append(sid)
    started = time.process_time()
    for sid in sids[:gone]:
        manager.pre_disconnect(sid, "/")
        await manager.disconnect(sid, "/")
    return (time.process_time() - started) / gone * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=20_000)
    parser.add_argument("--gone", type=int, default=2_000)
    args = parser.parse_args()
    for name, manager, server in (
        ("python-socketio", socketio.AsyncManager(), socketio.AsyncServer),
        ("this server", Manager(), Server),
    ):
        cost = await per_disconnect(manager, server, args.sockets, args.gone)
        print(f"{name}: {cost:.1f} µs of CPU per disconnect at {args.sockets:,} sockets")


if __name__ == "__main__":
    asyncio.run(main())
