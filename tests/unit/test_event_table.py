"""The limit table covers every Socket.IO event and signed-in REST route and is configured in
one setting (the limits binding on real nodes: e2e/test_event_limits.py)."""

from __future__ import annotations

import pytest
from aiohttp import web
from test_core import FakeBucket

from chat import config
from chat.adapters.rest import Rest, check_rows
from chat.core.events import ClientEvents
from chat.core.limiter import EventLimiter


def all_events() -> dict:
    # No use cases needed: the table only names the bound handlers.
    return ClientEvents.__new__(ClientEvents).events()


async def test_every_socket_event_spends_its_row_before_its_handler_runs():
    ran = []

    async def handler(conn, payload):
        ran.append(payload)
        return {}

    refusing = EventLimiter(FakeBucket(tokens=0), config.EVENT_LIMITS)
    guarded = refusing.guard(dict.fromkeys(all_events(), handler))
    assert set(guarded) == set(all_events())
    conn = type("Conn", (), {"user": type("User", (), {"id": "ann"})()})()
    for name, limited in guarded.items():
        with pytest.raises(Exception) as err:
            await limited(conn, {"event": name})
        assert getattr(err.value, "code", None) == "rate_limited", name
    assert ran == []


def test_an_event_or_route_without_a_row_is_refused_at_start():
    limiter = EventLimiter(FakeBucket(tokens=1), config.EVENT_LIMITS)

    async def handler(*_):
        return {}

    with pytest.raises(LookupError, match="new_event"):
        limiter.guard({**all_events(), "new_event": handler})
    routes = Rest.routes(Rest.__new__(Rest))
    check_rows(routes, limiter)  # every route of today is either public or has its row
    with pytest.raises(LookupError, match="/api/new"):
        check_rows([*routes, web.get("/api/new", handler)], limiter)


def test_the_table_is_configured_in_one_setting_over_the_defaults():
    env = {"CHAT_SHARDS": "s=redis://h:1", "CHAT_CLUSTER": "h:2", "CHAT_JWT_SECRET": "x" * 40}
    table = config.load(env).event_limit_table()
    assert table["send"] == (10.0, 20) and table["members"] == config.EVENT_LIMITS["members"]
    tuned = config.load({**env, "CHAT_EVENT_LIMITS": "*=50/60, join=2/3"}).event_limit_table()
    assert tuned["join"] == (2.0, 3) and tuned["send"] == tuned["typing"] == (50.0, 60)
    with pytest.raises(config.ConfigError, match="CHAT_EVENT_LIMITS"):
        config.load({**env, "CHAT_EVENT_LIMITS": "jion=1/2"})
    with pytest.raises(config.ConfigError, match="CHAT_EVENT_LIMITS"):
        config.load({**env, "CHAT_EVENT_LIMITS": "join=1"})
