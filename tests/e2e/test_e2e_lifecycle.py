"""Node lifecycle: readiness, and SIGTERM closing sockets so that clients reconnect elsewhere."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
import socketio
from sioclient import connected
from stack import register, start_stack


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_sigterm_closes_sockets_and_clients_reconnect_to_another_node(
    redis_fleet, tmp_path, jwt_secret, transport
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        user = await register(stack.url(1))
        sessions: asyncio.Queue[dict] = asyncio.Queue()
        reasons: asyncio.Queue[str] = asyncio.Queue()
        client = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
        client.on("session", sessions.put_nowait)
        client.on("disconnect", reasons.put_nowait)
        # The first URL serves the handshake; reconnects go to the same URL, so point the
        # client at node0 and move it by hand, as a load balancer would after node0 leaves.
        token = user.token
        await client.connect(stack.url(0), auth={"token": token}, transports=[transport])
        await asyncio.wait_for(sessions.get(), 10)

        exit_code = await asyncio.to_thread(stack.nodes[0].stop)

        assert exit_code == 0
        reason = await asyncio.wait_for(reasons.get(), 10)
        # A lost transport, after which clients retry; not "server disconnect", after which
        # they would stay away.
        assert reason == client.reason.TRANSPORT_ERROR
        await client.disconnect()
        await client.connect(stack.url(1), auth={"token": token}, transports=[transport])
        assert (await asyncio.wait_for(sessions.get(), 10))["user"]["id"] == user.id
        ack = await client.call("dm", {"to": user.id, "text": "back"}, timeout=10)
        assert ack["ok"] is True
        await client.disconnect()


async def test_metrics_are_served_in_prometheus_text(stack):
    user = await register(stack.url(0))
    async with connected(stack.url(0), user.token) as client:
        await client.next("session")
        # A note to oneself: the user's channel is followed by this node only, so its
        # delivery is local (counted apart from what comes through the shards).
        assert (await client.call("dm", {"to": user.id, "text": "note"}))["ok"] is True
        await client.next("message")
        async with (
            aiohttp.ClientSession() as http,
            http.get(stack.nodes[0].metrics_url + "/metrics") as resp,
        ):
            assert resp.status == 200
            text = await resp.text()
    for name in (
        "chat_connections ",
        "chat_online_users ",
        'chat_presence_transitions_total{state="online"}',
        "chat_presence_purged_entries_total ",
        'chat_shard_ready{shard="shard0"} 1.0',
        "chat_shardset_epoch ",
        "chat_shardset_phase 0.0",
        "chat_messages_stored_total ",
        "process_resident_memory_bytes ",
    ):
        assert name in text, name

    def value(name: str) -> float:
        return float(
            next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1]
        )

    assert value("chat_connections") >= 1
    assert value("chat_local_deliveries_total") >= 1


async def test_sigterm_deregisters_sockets_so_a_quick_move_is_no_offline(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=2) as stack:
        user, watcher = await register(stack.url(0)), await register(stack.url(1))
        async with connected(stack.url(1), watcher.token) as w:
            await w.call("watch", {"users": [user.id]})
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(stack.url(0), auth={"token": user.token})
            assert (await w.next("presence"))["online"] is True
            started = time.monotonic()
            assert await asyncio.to_thread(stack.nodes[0].stop) == 0
            assert time.monotonic() - started < 10
            await client.disconnect()
            async with connected(stack.url(1), user.token):  # moved within the grace period
                await asyncio.sleep(7)  # outlast the 5 s grace period: a false offline shows
                assert w.pending("presence") == []


async def test_sigterm_fails_readiness_at_once_and_keeps_serving_during_the_drain(
    redis_fleet, tmp_path, jwt_secret
):
    with start_stack(redis_fleet, tmp_path, jwt_secret, nodes=1, drain_seconds="3") as stack:
        user = await register(stack.url(0))
        node = stack.nodes[0]
        async with connected(stack.url(0), user.token) as client, aiohttp.ClientSession() as http:
            await client.next("session")
            node.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            while True:  # the signal is handled asynchronously: poll the endpoint under test
                async with http.get(stack.url(0) + "/readyz") as resp:
                    if resp.status == 503:
                        assert (await resp.json())["draining"] is True
                        break
                assert time.monotonic() - started < 1.0
            async with http.get(stack.url(0) + "/healthz") as resp:
                assert resp.status == 200
            ack = await client.call("dm", {"to": user.id, "text": "during the drain"})
            assert ack["ok"] is True
            assert time.monotonic() - started < 3.0  # all of that inside the drain period
            await client.next("__disconnect__", timeout=10)
        assert await asyncio.to_thread(node.proc.wait, 10) == 0
        assert time.monotonic() - started < 10
