"""Limits that hold across nodes, on a stack of their own with small limits: on the open
fleet and on the one with an ACL user and password (the limits live in the cluster)."""

from __future__ import annotations

import pytest
from redis_fixtures import AUTH_VARIANTS, fleet_of
from sioclient import connected
from stack import Stack, new_user_id, register, start_stack
from test_accounts import call


@pytest.fixture(scope="module", params=AUTH_VARIANTS)
def strict(request, tmp_path_factory, jwt_secret):
    with start_stack(
        fleet_of(request),
        tmp_path_factory.mktemp("strict"),
        jwt_secret,
        nodes=2,
        login_ip_rate="5",
        trusted_proxies="127.0.0.1/32",
        cookie_secure="true",
        send_rate="1",
        send_burst="3",
    ) as stack:
        yield stack


async def test_login_attempts_are_limited_per_client_address_across_nodes(strict: Stack):
    user = await register(strict.url(0))
    body = {"email": user.email, "password": user.password}
    statuses = [
        (await call("POST", strict.url(i % 2) + "/api/login", body, **{"X-Forwarded-For": ip}))[0]
        for i, ip in enumerate(["203.0.113.7"] * 6)
    ]
    assert statuses == [200] * 5 + [429]
    # Another client (as the trusted proxy reports it) is not affected ...
    status, _, _ = await call(
        "POST", strict.url(0) + "/api/login", body, **{"X-Forwarded-For": "198.51.100.1"}
    )
    assert status == 200
    # ... and a forged hop left of the real one changes nothing.
    status, _, _ = await call(
        "POST", strict.url(1) + "/api/login", body, **{"X-Forwarded-For": "10.9.9.9, 203.0.113.7"}
    )
    assert status == 429


async def test_an_ipv6_client_is_counted_by_its_64(strict: Stack):
    """A host picks any address in its /64: counted by the address, it could try without
    end.  Another /64 is another client."""
    user = await register(strict.url(0))
    body = {"email": user.email, "password": user.password}
    statuses = [
        (await call("POST", strict.url(0) + "/api/login", body, **{"X-Forwarded-For": ip}))[0]
        for ip in [f"2001:db8:7:9::{n:x}" for n in range(1, 6)] + ["2001:db8:7:9:ffff::1"]
    ]
    assert statuses == [200] * 5 + [429]
    status, _, _ = await call(
        "POST", strict.url(1) + "/api/login", body, **{"X-Forwarded-For": "2001:db8:7:a::1"}
    )
    assert status == 200


async def test_the_cookie_is_secure_when_configured(strict: Stack):
    status, _, resp = await call(
        "POST",
        strict.url(0) + "/api/register",
        {"email": new_user_id("secure") + "@example.com", "password": "pass phrase x"},
    )
    assert status == 201
    assert resp.cookies["chat_token"]["secure"] and resp.cookies["chat_refresh"]["secure"]


async def test_sends_are_rate_limited_per_user_across_nodes(strict: Stack):
    user = await register(strict.url(0))
    async with connected(strict.url(0), user.token) as a, connected(strict.url(1), user.token) as b:
        acks = []
        for i in range(4):
            socket = (a, b)[i % 2]
            acks.append(await socket.call("dm", {"to": user.id, "text": f"n{i}"}))
    assert [ack["ok"] for ack in acks] == [True, True, True, False]
    assert acks[3]["error"]["code"] == "rate_limited"
