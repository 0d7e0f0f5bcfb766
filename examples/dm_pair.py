"""Two python-socketio clients on two nodes of `make run` (`python -m devstack`) exchange a
direct message.

    python examples/dm_pair.py
    python examples/dm_pair.py --urls http://127.0.0.1:8001,http://127.0.0.1:8002

Each user signs in through the REST API of "their" node (any node can serve any user). The two
accounts are the same on every run (registered by the first run, signed in to by the next), so
running it again adds a DM message, not two more strangers to everyone's lobby.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import socketio

# Demo accounts of the local stack: fixed on purpose (see above), never for a real deployment.
PASSWORD = "two nodes, one conversation"  # noqa: S105 - a demo password, documented
USERS = {"Alice": "dm-pair-alice@example.com", "Bob": "dm-pair-bob@example.com"}


async def sign_in(http: aiohttp.ClientSession, url: str, name: str) -> dict:
    """Log in; the first time (401: no such account) register the account instead."""
    body = {"email": USERS[name], "password": PASSWORD}
    async with http.post(f"{url}/api/login", json=body) as resp:
        if resp.status != 401:
            resp.raise_for_status()
            return await resp.json()
    async with http.post(f"{url}/api/register", json={**body, "name": name}) as resp:
        if resp.status == 409:
            raise SystemExit(f"{USERS[name]} exists with another password: not dm_pair's account")
        resp.raise_for_status()
        return await resp.json()


async def run(urls: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        alice = await sign_in(http, urls[0], "Alice")
        bob = await sign_in(http, urls[-1], "Bob")
    a, b = socketio.AsyncClient(), socketio.AsyncClient()
    received: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    b.on("message", lambda msg: received.done() or received.set_result(msg))
    await a.connect(urls[0], auth={"token": alice["token"]})
    await b.connect(urls[-1], auth={"token": bob["token"]})
    print(
        f"Alice ({alice['user']['id']}) is on {urls[0]}, Bob ({bob['user']['id']}) is on {urls[-1]}"
    )
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
