"""Service tokens (chat/core/service.py) over the fakes: the token's shape and its stored hash,
the bot user, the scopes, authentication like a user's token on any node, revocation refusing
at once and ending open sockets everywhere, and what a service token may not do."""

from __future__ import annotations

import hashlib

import pytest
from fakes import MemoryAccounts, MemoryServiceTokens
from fakes.node import MemoryNode, World

from chat.core.accounts import Accounts
from chat.core.lifetime import SESSION_END
from chat.core.passwords import PasswordHasher
from chat.core.service import ServiceTokens, jti, parse
from chat.core.sessions import Sessions
from chat.core.tokens import session_cookie
from chat.errors import ChatError


async def make(node: MemoryNode, name: str = "Helper", *scopes: str) -> tuple[str, str, str]:
    """A new token on ``node``'s world: ``(token, token id, bot user id)``."""
    record, token = await node.service.create(name, scopes or ["bot"])
    return token, record.id, record.user


def test_a_token_parses_only_in_its_own_shape():
    ident = "0123456789abcdef"
    assert parse(f"svc_{ident}_sec_ret-x") == (ident, "sec_ret-x")  # the secret may hold "_"
    assert parse(f"svc_{ident.upper()}_s") == (ident, "s")
    for bad in (None, 42, "", "svc_", f"svc_{ident}", f"svc_{ident}_", "svc_0123_s",
                f"svc_{'g' * 16}_s", f"tok_{ident}_s", f"svc_{ident}_{'x' * 200}"):  # fmt: skip
        assert parse(bad) is None, bad


async def test_create_stores_only_a_hash_and_makes_a_bot_user_of_its_own(node, world):
    record, token = await node.service.create("  Deploy Bot ", ["bot"])
    ident, secret = parse(token) or ("", "")
    assert token == f"svc_{record.id}_{secret}" and len(secret) >= 43
    stored = world.service_tokens.tokens[ident]
    assert stored.hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(stored) and "hash" not in stored.listed()
    assert (stored.name, stored.scopes, stored.revoked) == ("Deploy Bot", ["bot"], 0)
    bot = world.accounts.records[stored.user]
    assert (bot.name, bot.email, bot.bot) == ("Deploy Bot", "", True)
    assert bot.public() == {"id": bot.id, "name": "Deploy Bot", "bot": True}
    other, _ = await node.service.create("Deploy Bot", ["bot"])
    assert other.user != stored.user and other.id != stored.id  # one bot user per token


async def test_the_admin_scope_makes_the_bot_a_service_admin_until_revoked(node, world):
    _, ident, user = await make(node, "Mod", "admin")
    assert world.service_tokens.tokens[ident].scopes == ["bot", "admin"]
    assert await node.service.is_admin(user)
    _, _, plain = await make(node, "Plain", "bot")
    assert not await node.service.is_admin(plain)
    await node.service.revoke(ident)
    assert not await node.service.is_admin(user)


@pytest.mark.parametrize(
    ("name", "scopes", "code"),
    [("Bot", ["root"], "invalid_request"), ("", ["bot"], "invalid_name"),
     (None, ["bot"], "invalid_name")],
)  # fmt: skip
async def test_a_bad_name_or_scope_is_refused_and_stores_nothing(node, world, name, scopes, code):
    users = set(world.accounts.records)
    with pytest.raises(ChatError) as err:
        await node.service.create(name, scopes)
    assert err.value.code == code
    assert world.service_tokens.tokens == {} and set(world.accounts.records) == users


async def test_a_bot_connects_on_either_node_and_talks_like_a_user(node, other, world):
    token, _, bot_id = await make(node)
    ann = await node.connect("ann")
    bot = await other.connect(bot_id, token=token)
    session = bot.events("session")[0]
    assert session["user"] == {"id": bot_id, "email": "", "name": "Helper", "bot": True}
    assert "lobby" in {room["id"] for room in session["rooms"]}
    ack = await bot.call("send", {"room": "lobby", "text": "hello from a bot"})
    assert ack["ok"], ack
    assert [m["text"] for m in ann.events("message")] == ["hello from a bot"]
    assert (await ann.call("dm", {"to": bot_id, "text": "hi bot"}))["ok"]
    assert [m["text"] for m in bot.events("message")][-1] == "hi bot"


@pytest.mark.parametrize("mangle", ["secret", "id", "prefix"])
async def test_a_wrong_secret_or_unknown_id_is_refused(node, mangle):
    token, ident, bot_id = await make(node)
    secret = token.split("_", 2)[2]
    wrong = {
        "secret": f"svc_{ident}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",
        "id": f"svc_{'0' * 16}_{secret}",
        "prefix": f"svc{ident}_{secret}",
    }[mangle]
    with pytest.raises(ChatError) as err:
        await node.connect(bot_id, token=wrong)
    assert err.value.code == "unauthorized"
    assert node.connections.by_sid == {}


async def test_revoking_refuses_at_once_and_ends_the_sockets_on_every_node(node, other, world):
    token, ident, bot_id = await make(node)
    here, there = await node.connect(bot_id, token=token), await other.connect(bot_id, token=token)
    ann = await node.connect("ann")
    revoked = await node.service.revoke(ident)
    await node.settle()
    await other.settle()
    assert revoked.revoked == world.clock.ms() and revoked.hash == ""
    for client in (here, there):
        assert client.events(SESSION_END) == [
            {"code": "token_revoked", "message": "this sign-in has ended: sign in again"}
        ]
        assert (client.sid, "token_revoked") in client.node.delivery.disconnected
    assert ann.events(SESSION_END) == []
    with pytest.raises(ChatError) as err:
        await other.connect(bot_id, token=token)
    assert (err.value.code, err.value.reason) == ("unauthorized", "token_revoked")
    again = await node.service.revoke(ident)  # announced again; the record unchanged
    assert again == revoked
    with pytest.raises(ChatError) as err:
        await node.service.revoke("f" * 16)
    assert err.value.code == "no_token"


async def test_a_revocation_during_the_handshake_is_caught_by_the_second_check(node, world):
    token, ident, _ = await make(node)
    claims = await node.accounts.authenticate(token)
    assert (claims.svc, claims.jti) == (ident, jti(ident))
    await world.service_tokens.revoke(ident, world.clock.ms())  # not announced yet
    with pytest.raises(ChatError) as err:
        await node.accounts.check(claims)
    assert err.value.reason == "token_revoked"


async def test_a_bot_socket_does_not_expire_with_time(node, world):
    token, _, bot_id = await make(node)
    bot = await node.connect(bot_id, token=token)
    world.clock.advance(30 * 86400)
    assert await node.connections.lifetimes.sweep() == 0
    assert bot.sid in node.connections.by_sid


async def test_a_service_token_cannot_log_out(node, world):
    token, _, _ = await make(node)
    claims = await node.accounts.authenticate(token)
    sessions = Sessions(
        world.sessions, world.accounts, world.limits, world.tokens, node.broker,
        refresh_ttl=3600, refresh_ip_rate=10,
    )  # fmt: skip
    for logout in (sessions.logout, sessions.logout_everywhere):
        with pytest.raises(ChatError) as err:
            await logout(claims)
        assert err.value.status == 403
    await node.accounts.check(claims)  # still in force


async def test_list_is_in_creation_order_and_shows_no_secret(node, world):
    first, _ = await node.service.create("One", ["bot"])
    world.clock.advance(1)
    second, _ = await node.service.create("Two", ["bot", "admin"])
    listed = await node.service.list()
    assert [t.id for t in listed] == [first.id, second.id]
    assert all("hash" not in t.listed() for t in listed)


def test_a_service_token_is_never_taken_from_the_cookie():
    assert session_cookie("chat_token=svc_0123456789abcdef_x") is None
    assert session_cookie("chat_token=eyJ.a.b") == "eyJ.a.b"


async def test_a_node_without_service_tokens_refuses_them():
    world = World()
    users = MemoryAccounts()
    service = ServiceTokens(MemoryServiceTokens(), users)
    _, token = await service.create("Bot", ["bot"])
    hasher = PasswordHasher(memory_cost=8192, time_cost=1, workers=1)
    accounts = Accounts(users, world.limits, hasher, world.tokens, login_ip_rate=100)
    with pytest.raises(ChatError) as err:
        await accounts.authenticate(token)
    assert err.value.code == "unauthorized"


def test_the_logs_never_show_a_service_tokens_secret():
    from chat.logs import scrub

    token = "svc_0123456789abcdef_" + "Zx-_9" * 9
    assert scrub(f"refused {token}.") == "refused svc_0123456789abcdef_<secret>."
