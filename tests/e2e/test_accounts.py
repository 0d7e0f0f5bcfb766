"""Accounts end to end: real nodes, real Redis Cluster, real HTTP and Socket.IO clients."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
import warnings

import aiohttp
import jwt
import pytest
import socketio
from sioclient import Client, connected
from stack import Stack, new_user_id, register


async def call(method: str, url: str, body=None, token=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None), resp


def fresh_email() -> str:
    return f"{new_user_id('acct')}@Example.com"


async def test_register_login_anywhere_and_logout_revokes_everywhere(stack: Stack):
    email, password = fresh_email(), "correct horse battery"
    status, body, _ = await call(
        "POST", stack.url(0) + "/api/register", {"email": email, "password": password}
    )
    assert status == 201
    assert body["user"]["email"] == email and body["user"]["name"] == email.split("@")[0]
    status, body, _ = await call(
        "POST", stack.url(0) + "/api/login", {"email": email.upper(), "password": password}
    )
    assert status == 200
    token, user_id = body["token"], body["user"]["id"]

    async with connected(stack.url(1), token) as socket_b:
        await socket_b.next("session")
        status, _, resp = await call("POST", stack.url(0) + "/api/logout", token=token)
        assert status == 204
        assert "chat_token=" in resp.headers["Set-Cookie"]  # cleared
        started = time.monotonic()
        assert await socket_b.next("__disconnect__", timeout=2.0) == "server disconnect"
        assert time.monotonic() - started < 2.0

    for node in (0, 1):
        refused = Client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await refused.connect(stack.url(node), token)
        assert refused.connect_error["code"] == "unauthorized"
        status, body, _ = await call("GET", stack.url(node) + "/api/me", token=token)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert user_id


async def test_logout_drops_only_the_sockets_of_that_token(stack: Stack):
    user = await register(stack.url(0))
    _, second, _ = await call(
        "POST", stack.url(1) + "/api/login", {"email": user.email, "password": user.password}
    )
    async with (
        connected(stack.url(0), user.token) as first_socket,
        connected(stack.url(1), second["token"]) as other_socket,
    ):
        await call("POST", stack.url(1) + "/api/logout", token=second["token"])
        await other_socket.next("__disconnect__", timeout=2.0)
        ack = await first_socket.call("dm", {"to": user.id, "text": "still connected"})
        assert ack["ok"] is True


async def test_one_email_one_account_even_when_registered_concurrently(stack: Stack):
    email = fresh_email()
    status, _, _ = await call(
        "POST", stack.url(0) + "/api/register", {"email": email, "password": "pass-phrase-1"}
    )
    assert status == 201
    status, body, _ = await call(
        "POST",
        stack.url(1) + "/api/register",
        {"email": f"  {email.lower()} ", "password": "xy" * 5},
    )
    assert (status, body["error"]["code"]) == (409, "email_taken")

    for _ in range(5):  # a real race, several times: two nodes, one email
        email = fresh_email()
        results = await asyncio.gather(
            *(
                call("POST", stack.url(i) + "/api/register", {"email": email, "password": "p-" * 5})
                for i in (0, 1)
            )
        )
        assert sorted(status for status, _, _ in results) == [201, 409]


async def test_unknown_email_and_wrong_password_look_the_same(stack: Stack):
    user = await register(stack.url(0))

    async def attempt(email: str):
        started = time.perf_counter()
        status, body, _ = await call(
            "POST", stack.url(1) + "/api/login", {"email": email, "password": "wrong-password!"}
        )
        return status, body, time.perf_counter() - started

    wrong = [await attempt(user.email) for _ in range(5)]
    unknown = [await attempt(fresh_email()) for _ in range(5)]
    assert {(s, json.dumps(b)) for s, b, _ in wrong} == {(s, json.dumps(b)) for s, b, _ in unknown}
    assert wrong[0][0] == 401 and wrong[0][1]["error"]["code"] == "invalid_credentials"
    # A dummy argon2 verify makes unknown emails cost what wrong passwords cost.  Without it
    # they answer ~10x faster; the bound leaves room for a noisy machine.
    assert statistics.median(t for *_, t in unknown) > 0.4 * statistics.median(t for *_, t in wrong)


async def test_repeated_failures_cool_the_account_down_then_the_password_works(stack: Stack):
    """The shared stack's cool-down is 1 s (production: 30 s, doubling, at most 15 min)."""
    user = await register(stack.url(0))
    login = stack.url(1) + "/api/login"
    for _ in range(10):
        status, _, _ = await call("POST", login, {"email": user.email, "password": "nope-nope"})
        assert status == 401
    status, body, resp = await call("POST", login, {"email": user.email, "password": user.password})
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    deadline = time.monotonic() + 5
    while status == 429 and time.monotonic() < deadline:
        await asyncio.sleep(0.25)  # waiting out a cool-down is the behaviour under test
        status, body, _ = await call(
            "POST", login, {"email": user.email, "password": user.password}
        )
    assert status == 200 and body["user"]["id"] == user.id


def _forge(secret: str, **claims) -> str:
    now = int(time.time())
    payload = {"sub": "x", "iat": now, "exp": now + 60, "jti": "j", "iss": "chat", **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, "HS256")


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


BAD_TOKENS = {
    "alg-none": lambda s, u: jwt.encode({"sub": u.id, "iss": "chat"}, None, algorithm="none"),
    "expired": lambda s, u: _forge(s, sub=u.id, exp=int(time.time()) - 3600),
    "wrong-issuer": lambda s, u: _forge(s, sub=u.id, iss="elsewhere"),
    "tampered": lambda s, u: _tampered(u.token),
    "other-key": lambda s, u: _forge("a-completely-different-secret-0123456789", sub=u.id),
    "no-exp": lambda s, u: _forge(s, sub=u.id, exp=None),
    "hs512": lambda s, u: _hs512(s, u.id),
}


def _hs512(secret: str, sub: str) -> str:
    """The server's own key under another algorithm (the key is short for HS512: the very
    point is that the server pins HS256, so PyJWT's warning about it is noise here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        claims = {"sub": sub, "iss": "chat", "jti": "j", "iat": 1, "exp": 2**40}
        return jwt.encode(claims, secret, "HS512")


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_tokens_are_refused_on_rest_and_handshake(stack: Stack, kind: str):
    user = await register(stack.url(0))
    token = BAD_TOKENS[kind](stack.secret, user)
    status, body, _ = await call("GET", stack.url(1) + "/api/me", token=token)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(stack.url(1), token)
    assert client.connect_error["code"] == "unauthorized"


async def test_profile_routes_and_the_cookie(stack: Stack):
    status, body, resp = await call(
        "POST",
        stack.url(0) + "/api/register",
        {"email": fresh_email(), "password": "a fine passphrase", "name": "  Zoë  "},
    )
    assert status == 201 and body["user"]["name"] == "Zoë"
    cookie = resp.cookies["chat_token"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    token, me = body["token"], body["user"]
    async with (
        aiohttp.ClientSession(cookies={"chat_token": token}) as http,
        http.get(stack.url(1) + "/api/me") as r,  # the cookie alone authenticates
    ):
        assert (r.status, (await r.json())["user"]) == (200, me)
    status, body, _ = await call("PATCH", stack.url(1) + "/api/me", {"name": "Zed"}, token)
    assert (status, body["user"]["name"]) == (200, "Zed")
    status, body, _ = await call("GET", stack.url(0) + f"/api/users/{me['id']}", token=token)
    assert status == 200 and body["user"] == {"id": me["id"], "name": "Zed", "online": False}
    status, body, _ = await call("GET", stack.url(0) + "/api/users/nobody-here", token=token)
    assert (status, body["error"]["code"]) == (404, "no_user")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "not-an-email", "password": "long enough pw"}, "invalid_email"),
        ({"email": "a@b.example", "password": "short"}, "invalid_password"),
        ({"email": "a@b.example", "password": "Password123"}, "invalid_password"),
        ({"email": "a@b.example", "password": "p" * 1025}, "invalid_password"),
        ({"email": "a@b.example", "password": "long enough pw", "name": "x" * 65}, "invalid_name"),
        ({"email": "a@b.example", "password": "long enough pw", "name": "   "}, "invalid_name"),
        ({"email": 5, "password": "long enough pw"}, "invalid_email"),
    ],
)
async def test_registration_rules(stack: Stack, body, code):
    status, answer, _ = await call("POST", stack.url(0) + "/api/register", body)
    assert (status, answer["error"]["code"]) == (400, code)
    assert body["password"] not in json.dumps(answer) or len(body["password"]) < 8


async def test_malformed_requests_get_json_errors(stack: Stack):
    async with aiohttp.ClientSession() as http:
        async with http.post(stack.url(0) + "/api/login", data=b"{not json") as r:
            assert (r.status, (await r.json())["error"]["code"]) == (400, "invalid_request")
        async with http.get(stack.url(0) + "/api/nothing-here") as r:
            assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found")


async def test_compatibility_routes_of_the_single_room_chat(stack: Stack):
    email = fresh_email()
    status, created, _ = await call(
        "POST", stack.url(0) + "/user/", {"email": email, "password": "compat-password"}
    )
    assert status == 201 and set(created) == {"id", "email", "name", "authKey"}
    status, body, resp = await call(
        "PUT", stack.url(1) + "/user/", {"email": email, "password": "compat-password"}
    )
    assert status == 200 and body == {k: created[k] for k in ("id", "email", "name")}
    cookie = resp.cookies["chat_token"].value
    status, _, _ = await call("PUT", stack.url(1) + "/user/", {"email": email, "password": "no!"})
    assert status == 401

    text = f"hello lobby {new_user_id()}"
    async with (
        aiohttp.ClientSession(cookies={"chat_token": cookie}) as http,
        http.post(stack.url(1) + "/message/", json={"text": text}) as r,
    ):
        assert r.status == 201
        stored = await r.json()
    assert stored["text"] == text and stored["room"] == "lobby"
    assert abs(stored["ts"] - time.time() * 1000) < 60_000
    status, _, _ = await call("POST", stack.url(0) + "/message/", {"text": "anonymous"})
    assert status == 401
    status, listed, _ = await call("GET", stack.url(0) + "/message/")  # no auth needed
    assert status == 200 and listed[-1] == stored
    assert [m["seq"] for m in listed] == sorted(m["seq"] for m in listed) and len(listed) <= 100
    # Many at once share the node's reads (one in flight at a time): each sees what was
    # stored before it asked, as one alone does.
    answers = await asyncio.gather(*(call("GET", stack.url(1) + "/message/") for _ in range(40)))
    assert {status for status, _, _ in answers} == {200}
    assert all(body[-1] == stored for _, body, _ in answers)


async def test_origins_outside_the_allowlist_are_refused(stack: Stack):
    evil = "https://evil.example"
    status, body, _ = await call(
        "POST", stack.url(0) + "/api/login", {"email": "a@b.c", "password": "x"}, Origin=evil
    )
    assert (status, body["error"]["code"]) == (403, "forbidden_origin")
    own = stack.url(0)
    status, _, _ = await call("GET", own + "/message/", Origin=own)
    assert status == 200
    user = await register(stack.url(0))
    client = Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(stack.url(0), user.token, headers={"Origin": evil})
    async with connected(stack.url(0), user.token, headers={"Origin": own}) as ok:
        assert (await ok.next("session"))["user"]["id"] == user.id


async def test_no_password_or_token_reaches_the_logs(stack: Stack):
    user = await register(stack.url(0))
    await call("POST", stack.url(1) + "/api/login", {"email": user.email, "password": "wrong-one!"})
    await call(
        "POST", stack.url(1) + "/api/login", {"email": user.email, "password": user.password}
    )
    await call("GET", stack.url(0) + "/api/me", token=user.token + "x")
    async with connected(stack.url(1), user.token) as client:
        await client.call("dm", {"to": 42, "text": user.password})  # a bad payload, logged?
    await call("POST", stack.url(0) + "/api/logout", token=user.token)
    for node in stack.nodes:
        text = node.log_path.read_text()
        assert user.password not in text and "wrong-one!" not in text
        assert user.token[:40] not in text and "eyJ" not in text
