"""Two python-socketio clients on two nodes of `chat dev` exchange a direct message.

    python examples/dm_pair.py                # against the default `chat dev` stack
    python examples/dm_pair.py --urls http://127.0.0.1:8001,http://127.0.0.1:8002

Tokens are minted with the dev stack's secret (kept in its data dir), the way `chat token` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import socketio

from chat.core.tokens import TokenService


async def run(urls: list[str], secret: str) -> None:
    tokens = TokenService(signing_key=secret, issuer=os.environ.get("CHAT_JWT_ISSUER", "chat"))
    alice, bob = socketio.AsyncClient(), socketio.AsyncClient()
    received: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    bob.on("message", lambda msg: received.done() or received.set_result(msg))
    await alice.connect(urls[0], auth={"token": tokens.issue("alice", "Alice")[0]})
    await bob.connect(urls[-1], auth={"token": tokens.issue("bob", "Bob")[0]})
    print(f"alice is on {urls[0]}, bob is on {urls[-1]}")
    ack = await alice.call("dm", {"to": "bob", "text": "hello from the other node"})
    print("alice's ack:", ack)
    message = await asyncio.wait_for(received, 5)
    print(
        f"bob received from {message['from']['name']}: {message['text']!r} (seq {message['seq']})"
    )
    await alice.disconnect()
    await bob.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", default="http://127.0.0.1:8001,http://127.0.0.1:8002")
    parser.add_argument("--data-dir", type=Path, default=Path(".data/dev"))
    args = parser.parse_args()
    secret = os.environ.get("CHAT_JWT_SECRET") or (args.data_dir / "jwt_secret").read_text().strip()
    asyncio.run(run(args.urls.split(","), secret))


if __name__ == "__main__":
    main()
