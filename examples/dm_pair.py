"""Two python-socketio clients on two nodes of `make run` (`python -m devstack`) exchange a
direct message.

    python examples/dm_pair.py
    python examples/dm_pair.py --urls http://127.0.0.1:8001,http://127.0.0.1:8002

Each user registers through the REST API of "their" node (any node can serve any user).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

import aiohttp
import socketio


async def register(http: aiohttp.ClientSession, url: str, name: str) -> dict:
    email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
    body = {"email": email, "password": secrets.token_urlsafe(12), "name": name}
    async with http.post(f"{url}/api/register", json=body) as resp:
        resp.raise_for_status()
        return await resp.json()


async def run(urls: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await register(http, urls[0], "Alice")
        bob = await register(http, urls[-1], "Bob")
    a, b = socketio.AsyncClient(), socketio.AsyncClient()
    received: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    b.on("message", lambda msg: received.done() or received.set_result(msg))
    await a.connect(urls[0], auth={"token": alice["token"]})
    await b.connect(urls[-1], auth={"token": bob["token"]})
    print(f"Alice is on {urls[0]}, Bob is on {urls[-1]}")
    ack = await a.call("dm", {"to": bob["user"]["id"], "text": "hello from the other node"})
    print("Alice's ack:", ack)
    message = await asyncio.wait_for(received, 5)
    print(
        f"Bob received from {message['from']['name']}: {message['text']!r} (seq {message['seq']})"
    )
    await a.disconnect()
    await b.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", default="http://127.0.0.1:8001,http://127.0.0.1:8002")
    asyncio.run(run(parser.parse_args().urls.split(",")))


if __name__ == "__main__":
    main()
