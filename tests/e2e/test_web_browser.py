"""The web client in a real browser (Debian's Chromium through Playwright) against the two
nodes of the shared stack: person A's browser talks to node 0, person B's to node 1.

Every wait is on a condition (``expect``, locator waits); no sleep synchronises anything.
Screenshots of the main screens go to ``test-artifacts/screenshots/``; with
``CHAT_UPDATE_DOCS_SCREENSHOT=1`` the desktop one is also copied to ``docs/screenshot.png``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Iterator

import jwt
import pytest
from browser import (
    DOCS_SCREENSHOT,
    PHONE,
    WAIT_MS,
    Chatter,
    missing_browser,
    register_via_api,
    rest,
    tag,
    watch_page,
)
from browser_fixtures import Open, create_room_via_ui, signed_in
from stack import Stack, start_stack

_missing = missing_browser()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

from playwright.async_api import expect  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")
expect.set_options(timeout=WAIT_MS)


async def register_via_ui(chatter: Chatter) -> None:
    await chatter.page.goto(chatter.url)
    await expect(chatter.testid("login-form")).to_be_visible()
    await chatter.testid("tab-register").click()
    await chatter.testid("register-name").fill(chatter.name)
    await chatter.testid("register-email").fill(chatter.email)
    await chatter.testid("register-password").fill(chatter.password)
    await chatter.testid("register-submit").click()
    await expect(chatter.testid("chat-view")).to_be_visible()
    await expect(chatter.status).to_have_attribute("data-state", "connected")
    chatter.id = await chatter.testid("me-id").inner_text()


# --- 1. accounts and a first exchange ----------------------------------------------------------


async def test_register_log_out_log_in_and_talk_across_nodes(stack: Stack, people: Open):
    ann = await people(stack.url(0), f"Ann {tag()}")
    await ann.page.goto(ann.url)
    await expect(ann.testid("login-form")).to_be_visible()
    await ann.screenshot("login")
    await register_via_ui(ann)
    await expect(ann.testid("me-name")).to_have_text(ann.name)
    bob = await people(stack.url(1), f"Bob {tag()}")
    await register_via_ui(bob)

    hello, reply = f"hello from Ann {tag()}", f"hi Ann, Bob here {tag()}"
    await ann.send(hello)
    seen = bob.message(hello)
    await expect(seen.get_by_test_id("message-author")).to_have_text(ann.name)
    await expect(seen.get_by_test_id("message-time")).to_have_text(re.compile(r"\d{1,2}.\d\d"))
    await expect(seen).to_have_attribute("data-mine", "false")
    await expect(ann.message(hello)).to_have_attribute("data-mine", "true")
    await bob.send(reply)
    await expect(ann.message(reply).get_by_test_id("message-author")).to_have_text(bob.name)
    await expect(ann.message(reply).get_by_test_id("message-time")).not_to_be_empty()
    await ann.screenshot("lobby")

    # Sign out: the sign-in form again, and the cookie is gone.
    await ann.testid("logout").click()
    await expect(ann.testid("login-form")).to_be_visible()
    await expect(ann.testid("chat-view")).to_be_hidden()
    status, _ = await rest(ann, "GET", "/api/me")
    assert status == 401

    # A wrong password is refused with a message; the right one signs in again.
    await ann.testid("login-email").fill(ann.email)
    await ann.testid("login-password").fill(ann.password + "x")
    await ann.testid("login-submit").click()
    await expect(ann.testid("auth-error")).to_have_text("Wrong email or password.")
    await ann.testid("login-password").fill(ann.password)
    await ann.testid("login-submit").click()
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await expect(ann.testid("me-name")).to_have_text(ann.name)
    await expect(ann.message(hello)).to_have_count(1)
    await expect(ann.message(reply)).to_have_count(1)
    # Signed in again, still live.
    again = f"Ann is back {tag()}"
    await ann.send(again)
    await expect(bob.message(again)).to_have_count(1)


async def test_a_second_tab_shows_my_messages_and_signing_out_ends_both(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    tab = await ann.context.new_page()  # same browser, same cookie
    watch_page(ann, tab)
    await tab.goto(ann.url)
    second = Chatter(ann.context, tab, ann.url, ann.name, ann.email, ann.password, ann.id)
    await expect(second.status).to_have_attribute("data-state", "connected")
    text = f"from the first tab {tag()}"
    await ann.send(text)
    await expect(second.message(text)).to_have_attribute("data-mine", "true")
    await expect(second.message(text)).to_have_count(1)

    await ann.testid("logout").click()
    await expect(ann.testid("login-form")).to_be_visible()
    # The server drops every socket of the revoked token: the other tab signs out too.
    await expect(second.testid("login-form")).to_be_visible()
    await expect(second.testid("auth-error")).to_contain_text("sign in again")


async def test_a_session_revoked_while_offline_ends_at_the_sign_in_form(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    await ann.context.set_offline(True)
    await expect(ann.status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    status, _ = await rest(ann, "POST", "/api/logout")  # elsewhere, e.g. another device
    assert status == 204
    await ann.context.set_offline(False)
    # The reconnect is refused (connect_error "unauthorized"): back to the sign-in form.
    await expect(ann.testid("login-form")).to_be_visible()
    await expect(ann.testid("auth-error")).to_contain_text("sign in again")


# --- 2. rename --------------------------------------------------------------------------------


async def test_a_rename_is_seen_live_in_messages_and_members(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    before = f"before the rename {tag()}"
    await ann.send(before)
    await expect(bob.message(before).get_by_test_id("message-author")).to_have_text(ann.name)
    await expect(bob.member(ann.id).get_by_test_id("member-name")).to_have_text(ann.name)

    new_name = f"Annabel {tag()}"
    await ann.testid("rename-open").click()
    await ann.testid("rename-input").fill(new_name)
    await ann.testid("rename-input").press("Enter")
    await expect(ann.testid("me-name")).to_have_text(new_name)
    await expect(ann.testid("rename-form")).to_be_hidden()

    await expect(bob.member(ann.id).get_by_test_id("member-name")).to_have_text(new_name)
    await expect(bob.message(before).get_by_test_id("message-author")).to_have_text(new_name)
    after = f"after the rename {tag()}"
    await ann.send(after)
    await expect(bob.message(after).get_by_test_id("message-author")).to_have_text(new_name)


async def test_every_shown_name_reveals_its_user_id(stack: Stack, people: Open):
    """Names are not unique: a name in the member list or on a message shows the user's id
    on hover (its title), so an impostor with the very same name is told apart; the title
    follows a rename.  And the page holds no token: the cookies are HttpOnly."""
    ann = await signed_in(people, stack.url(0), f"Alice Admin {tag()}")
    fake = await signed_in(people, stack.url(1), ann.name)
    text = f"it is me, the admin {tag()}"
    await fake.send(text)
    author = ann.message(text).get_by_test_id("message-author")
    await expect(author).to_have_text(ann.name)
    await expect(author).to_have_attribute("title", f"{ann.name} · user id {fake.id}")
    await author.hover()
    for who in (ann, fake):
        shown = fake.member(who.id).get_by_test_id("member-name")
        await expect(shown).to_have_attribute("title", f"{ann.name} · user id {who.id}")
    new_name = f"Mallory {tag()}"
    await fake.testid("rename-open").click()
    await fake.testid("rename-input").fill(new_name)
    await fake.testid("rename-input").press("Enter")
    await expect(fake.testid("me-name")).to_have_text(new_name)
    await expect(author).to_have_attribute("title", f"{new_name} · user id {fake.id}")
    stored = "JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}])"
    for who in (ann, fake):
        seen = await who.page.evaluate(stored)
        assert "chat_token" not in seen and "eyJ" not in seen, seen  # no JWT in reach of JS


async def test_the_register_form_states_the_password_rule(stack: Stack, people: Open):
    carol = await people(stack.url(0), f"Carol {tag()}")
    await carol.page.goto(carol.url)
    await carol.testid("tab-register").click()
    rule = carol.testid("register-password-rule")
    await expect(rule).to_be_visible()
    for words in ("8 to 1024", "common", "spaces", "repeated", "email", "name"):
        await expect(rule).to_contain_text(words)
    await carol.testid("register-name").fill(carol.name)
    await carol.testid("register-email").fill(carol.email)
    for password, said in (("aaaaaaaaaa", "repeated"), (carol.email.split("@")[0], "email")):
        await carol.testid("register-password").fill(password)
        await carol.testid("register-submit").click()
        await expect(carol.testid("auth-error")).to_contain_text(said)


# --- 3. direct messages -------------------------------------------------------------------------


async def test_a_dm_started_from_the_member_list_shows_up_unread(stack: Stack, people: Open):
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")  # Bob is in Ann's member list
    dm = "dm:" + ":".join(sorted((ann.id, bob.id)))

    await ann.member(bob.id).hover()
    await ann.member(bob.id).get_by_test_id("member-dm").click()
    await expect(ann.testid("room-title")).to_have_text(bob.name)
    psst = f"psst, Bob {tag()}"
    await ann.send(psst)
    await expect(ann.message(psst)).to_have_count(1)

    entry = bob.room(dm)
    await expect(entry.get_by_test_id("room-name")).to_have_text(ann.name)
    await expect(entry.get_by_test_id("unread-badge")).to_have_text("1")
    await expect(entry.get_by_test_id("unread-badge")).to_be_visible()
    second = f"are you there? {tag()}"
    await ann.send(second)
    await expect(entry.get_by_test_id("unread-badge")).to_have_text("2")

    await entry.click()
    await expect(bob.testid("room-title")).to_have_text(ann.name)
    await expect(bob.message(psst)).to_have_count(1)
    await expect(bob.message(second)).to_have_count(1)
    await expect(entry.get_by_test_id("unread-badge")).to_be_hidden()
    answer = f"yes, here {tag()}"
    await bob.send(answer)
    await expect(ann.message(answer)).to_have_count(1)
    await expect(ann.room(dm).get_by_test_id("unread-badge")).to_be_hidden()
    await bob.screenshot("dm")


# --- 4. presence ------------------------------------------------------------------------------


async def test_the_presence_dot_turns_off_when_the_other_browser_goes_away(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    dot = bob.member(ann.id)
    await expect(dot).to_have_attribute("data-online", "true")
    await expect(dot.get_by_test_id("presence-dot")).to_be_visible()
    await ann.context.close()
    # Offline after the 5 s grace period, announced to Bob's watch.
    await expect(dot).to_have_attribute("data-online", "false", timeout=20_000)


# --- 5. reload --------------------------------------------------------------------------------


async def test_a_reload_keeps_the_session_and_the_room(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    room = f"reload-{tag()}"
    await create_room_via_ui(ann, room, f"Room {room}")
    text = f"still here after a reload {tag()}"
    await ann.send(text)
    await expect(ann.message(text)).to_have_count(1)

    await ann.page.reload()
    await expect(ann.testid("chat-view")).to_be_visible()
    await expect(ann.testid("auth-view")).to_be_hidden()
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await expect(ann.testid("me-name")).to_have_text(ann.name)
    await expect(ann.room(room)).to_have_attribute("aria-current", "page")
    await expect(ann.message(text)).to_have_count(1)


# --- 6. history ------------------------------------------------------------------------------


async def test_scrolling_up_loads_older_messages_in_order_without_duplicates(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    room = f"history-{tag()}"
    await create_room_via_ui(ann, room, "History")
    await ann.room("lobby").click()
    total = 120
    for start in range(0, total, 20):  # 20 concurrent posts at a time
        answers = await asyncio.gather(
            *(
                rest(ann, "POST", f"/api/rooms/{room}/messages", {"text": f"m{n:03d}"})
                for n in range(start, start + 20)
            )
        )
        assert all(code == 201 for code, _ in answers), answers
    await ann.page.reload()  # a fresh page knows nothing of the room's messages
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await ann.room(room).click()
    await expect(ann.messages).to_have_count(50)
    assert await ann.seqs() == list(range(total - 49, total + 1))
    history = ann.testid("history-status")
    await expect(history).to_have_attribute("data-state", "more")

    scroller = ann.testid("message-scroller")
    await scroller.evaluate("(el) => { el.scrollTop = 0; }")
    await expect(ann.messages).to_have_count(100)
    assert await ann.seqs() == list(range(total - 99, total + 1))
    # The view stays where the reader was: the older page went in above it.
    assert await scroller.evaluate("(el) => el.scrollTop") > 0

    await scroller.evaluate("(el) => { el.scrollTop = 0; }")
    await expect(ann.messages).to_have_count(total)
    await expect(history).to_have_attribute("data-state", "start")
    assert await ann.seqs() == list(range(1, total + 1))
    texts = await ann.texts()
    assert len(set(texts)) == total


# --- 7. no script from message text ----------------------------------------------------------


async def test_html_in_messages_and_names_is_shown_as_text_and_never_runs(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"<b>Ann</b> {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    payloads = [
        f"<img src=x onerror=alert(1)> {tag()}",
        f"<script>alert(2)</script> {tag()}",
        f'<svg onload="alert(3)"></svg><a href="javascript:alert(4)">x</a> {tag()}',
    ]
    for payload in payloads:
        await ann.send(payload)
    for payload in payloads:
        await expect(bob.message(payload)).to_have_count(1)
        await expect(ann.message(payload)).to_have_count(1)
        await expect(bob.message(payload).get_by_test_id("message-author")).to_have_text(ann.name)
    await expect(bob.member(ann.id).get_by_test_id("member-name")).to_have_text(ann.name)
    for who in (ann, bob):
        injected = who.page.locator(
            '[data-testid="message-list"] :is(img, script, svg, [onerror], [onload])'
        )
        await expect(injected).to_have_count(0)
        await expect(who.page.locator('a[href^="javascript:"]')).to_have_count(0)
        assert await who.alerts() == []
        assert who.problems == []


# --- 8. links --------------------------------------------------------------------------------


async def test_only_http_links_become_links(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    text = (
        f"see https://example.com/x, then javascript:alert(1) and "
        f"data:text/html,hi or http://example.org/a_(b) {tag()}"
    )
    await ann.send(text)
    item = bob.message(text)
    await expect(item).to_have_count(1)
    links = item.locator("a")
    await expect(links).to_have_count(2)
    first = links.nth(0)
    await expect(first).to_have_attribute("href", "https://example.com/x")
    await expect(first).to_have_text("https://example.com/x")
    await expect(first).to_have_attribute("rel", "noopener noreferrer")
    await expect(first).to_have_attribute("target", "_blank")
    await expect(links.nth(1)).to_have_attribute("href", "http://example.org/a_(b)")
    await expect(item.get_by_test_id("message-text")).to_have_text(text)
    hrefs = await links.evaluate_all("(links) => links.map((a) => a.protocol)")
    assert set(hrefs) <= {"http:", "https:"}


# --- 9. connection loss -------------------------------------------------------------------------

WATCH_STATES = """(node) => {
  window.__states = [node.dataset.state];
  new MutationObserver(() => window.__states.push(node.dataset.state))
    .observe(node, { attributes: true, attributeFilter: ["data-state"] });
}"""


async def test_sends_while_offline_are_delivered_once_and_missed_messages_synced(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    room = f"flaky-{tag()}"
    # Ann creates the room in the UI, Bob joins it from the room browser.
    await create_room_via_ui(ann, room, "Flaky network")
    await bob.testid("browse-open").click()
    listed = bob.page.locator(f'[data-testid="browse-item"][data-room="{room}"]')
    await expect(listed).to_contain_text("Flaky network")
    await listed.get_by_test_id("browse-join").click()
    await expect(bob.testid("browse-dialog")).to_be_hidden()
    await expect(bob.testid("room-title")).to_have_text("Flaky network")
    first = f"before {tag()}"
    await bob.send(first)
    await expect(ann.message(first)).to_have_count(1)
    await expect(ann.member(bob.id)).to_have_count(1)

    await ann.status.evaluate(WATCH_STATES)
    await ann.context.set_offline(True)
    await expect(ann.status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    offline_text = f"written while offline {tag()}"
    await ann.send(offline_text)
    pending = ann.testid("pending-message")
    await expect(pending).to_have_count(1)
    await expect(pending).to_have_attribute("data-state", "queued")
    missed = [f"missed {n} {tag()}" for n in range(3)]
    for text in missed:
        await bob.send(text)
        await expect(bob.message(text)).to_have_count(1)
    await ann.screenshot("offline")

    await ann.context.set_offline(False)
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await expect(pending).to_have_count(0)
    for who in (ann, bob):
        for text in [first, *missed, offline_text]:
            await expect(who.message(text)).to_have_count(1)
        seqs = await who.seqs()
        assert seqs == sorted(set(seqs)), seqs
        texts = await who.texts()
        assert texts == [first, *missed, offline_text], texts
    states = await ann.page.evaluate("window.__states")
    assert states[0] == "connected" and states[-1] == "connected", states
    assert "reconnecting" in states, states
    status, page = await rest(ann, "GET", f"/api/rooms/{room}/messages")
    assert status == 200
    assert [m.get("text") for m in page["messages"]].count(offline_text) == 1

    await bob.testid("leave-room").click()
    await expect(bob.room(room)).to_have_count(0)
    await expect(bob.room("lobby")).to_have_attribute("aria-current", "page")
    await expect(ann.member(bob.id)).to_have_count(0)


async def test_a_send_whose_ack_is_lost_is_retried_with_the_same_cid(stack: Stack, people: Open):
    """The server stores the message but its ack (and live event) never reach the page, whose
    connection then dies: the retry after reconnecting must reuse the cid, so the server
    answers with the stored message instead of storing it twice.  On the new connection every
    message event is delivered twice: the page shows each once."""
    ann = await people(stack.url(0), f"Ann {tag()}")
    text = f"my ack got lost {tag()}"
    seen: dict[str, list] = {"connections": [], "dropped": []}

    async def route(ws) -> None:
        seen["connections"].append(ws.url)
        first = len(seen["connections"]) == 1
        server = ws.connect_to_server()

        async def to_page(message) -> None:
            if first and isinstance(message, str) and text in message:
                seen["dropped"].append(message)
                if message.startswith("43"):  # the ack: now the connection fails
                    await ws.close()
                return
            ws.send(message)
            if not first and isinstance(message, str) and message.startswith('42["message"'):
                ws.send(message)  # delivered twice: the client must still show it once

        ws.on_message(server.send)
        server.on_message(to_page)

    await ann.page.route_web_socket(re.compile(r"/socket\.io/"), route)
    await register_via_api(ann)
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await ann.send(text)
    await expect(ann.message(text)).to_have_count(1)
    await expect(ann.testid("pending-message")).to_have_count(0)
    await expect(ann.status).to_have_attribute("data-state", "connected")
    assert any(m.startswith("43") for m in seen["dropped"]), seen["dropped"]
    assert len(seen["connections"]) >= 2
    status, page = await rest(ann, "GET", "/api/rooms/lobby/messages?limit=100")
    assert status == 200
    assert [m.get("text") for m in page["messages"]].count(text) == 1
    again = f"and this one arrives twice {tag()}"
    await ann.send(again)
    await expect(ann.message(again)).to_have_count(1)
    seqs = await ann.seqs()
    assert seqs == sorted(set(seqs)), seqs


# --- 10. keyboard and phone --------------------------------------------------------------------


async def test_enter_sends_and_shift_enter_makes_a_new_line(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    first, second = f"first line {tag()}", f"second line {tag()}"
    await ann.composer.focus()
    await ann.page.keyboard.type(first)
    await ann.page.keyboard.press("Shift+Enter")
    await ann.page.keyboard.type(second)
    await expect(ann.composer).to_have_value(f"{first}\n{second}")
    await expect(ann.testid("pending-message")).to_have_count(0)
    await ann.page.keyboard.press("Enter")
    await expect(ann.message(f"{first}\n{second}")).to_have_count(1)
    await expect(ann.composer).to_have_value("")
    await expect(ann.composer).to_be_focused()


async def test_the_chat_is_usable_on_a_phone(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}", viewport=PHONE)
    await expect(ann.composer).to_be_in_viewport()
    await expect(ann.testid("composer-send")).to_be_in_viewport()
    await expect(ann.testid("sidebar")).to_be_hidden()
    text = f"sent from a phone {tag()}"
    await ann.composer.fill(text)
    await ann.testid("composer-send").tap()
    await expect(ann.message(text)).to_have_count(1)
    await ann.screenshot("phone")

    await ann.testid("drawer-toggle").tap()
    await expect(ann.testid("sidebar")).to_be_visible()
    await expect(ann.room("lobby")).to_be_in_viewport()
    await ann.screenshot("phone-rooms")
    await ann.room("lobby").tap()
    await expect(ann.testid("sidebar")).to_be_hidden()
    await ann.testid("members-toggle").tap()
    await expect(ann.member(ann.id)).to_be_in_viewport()
    await ann.screenshot("phone-members")
    await ann.page.keyboard.press("Escape")
    await expect(ann.testid("members-panel")).to_be_hidden()
    await expect(ann.composer).to_be_in_viewport()


# --- private rooms, invitations, typing (and the README's screenshot) ---------------------------


async def test_invite_to_a_private_room_and_see_the_other_typing(stack: Stack, people: Open):
    alice = await signed_in(people, stack.url(0), "Alice")
    bob = await signed_in(people, stack.url(1), "Bob")
    room = f"design-{tag()}"
    await create_room_via_ui(alice, room, "Design review", private=True)
    await expect(bob.room(room)).to_have_count(0)

    await alice.room("lobby").click()
    await alice.member(bob.id).hover()
    await alice.member(bob.id).get_by_test_id("member-invite").click()
    await expect(alice.testid("invite-room")).to_have_value(room)
    await alice.testid("invite-pick-submit").click()
    await expect(alice.testid("invite-dialog")).to_be_hidden()

    await expect(bob.room(room).get_by_test_id("room-name")).to_have_text("Design review")
    await alice.room(room).click()
    await expect(alice.member(bob.id)).to_have_count(1)
    lines = [
        (alice, "Morning! The new login screen is up: https://example.com/design/login"),
        (bob, "Looks clean. Does it work on phones?"),
        (alice, "Yes, the room list turns into a drawer below 700 px."),
    ]
    await bob.room(room).click()
    for who, text in lines:
        await who.send(text)
        await expect(alice.message(text)).to_have_count(1)
        await expect(bob.message(text)).to_have_count(1)

    await bob.composer.press_sequentially("Shipping it")
    await expect(alice.testid("typing")).to_have_text("Bob is typing…")
    await alice.screenshot("desktop")
    if os.environ.get("CHAT_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(await alice.screenshot("desktop"), DOCS_SCREENSHOT)
    # The notice fades about 3 s after the last one.
    await expect(alice.testid("typing")).to_have_text("", timeout=8_000)


# --- 7. a sign-in outlives its access tokens ------------------------------------------------

SHORT_TTL = 4  # seconds an access token lives on the short-lived stack


@pytest.fixture(scope="module")
def short_lived(redis_fleet, tmp_path_factory, jwt_secret) -> Iterator[Stack]:
    """Two nodes of their own whose access tokens live a few seconds."""
    with start_stack(
        redis_fleet, tmp_path_factory.mktemp("short-lived"), jwt_secret, token_ttl=str(SHORT_TTL)
    ) as short:
        yield short


async def access_token(chatter: Chatter) -> str:
    """The HttpOnly cookie, read by the test (the page itself never can)."""
    cookies = await chatter.context.cookies(chatter.url)
    return next(c["value"] for c in cookies if c["name"] == "chat_token")


async def test_the_page_keeps_working_after_its_first_access_token_expired(
    short_lived: Stack, people: Open
):
    ann = await signed_in(people, short_lived.url(0), f"Ann {tag()}")
    bob = await signed_in(people, short_lived.url(1), f"Bob {tag()}")
    first = await access_token(ann)
    expiry = jwt.decode(first, options={"verify_signature": False})["exp"]
    # Waiting out the token's lifetime is the behaviour under test.
    await asyncio.sleep(max(0.0, expiry + 1 - time.time()))
    assert await access_token(ann) != first  # renewed in the background, no password asked
    await expect(ann.status).to_have_attribute("data-state", "connected")
    for who, other in ((ann, bob), (bob, ann)):
        text = f"after the first token expired {tag()}"
        await who.send(text)
        await expect(other.message(text)).to_have_count(1)
        await expect(who.message(text)).to_have_attribute("data-mine", "true")
    status, body = await rest(ann, "GET", "/api/me")
    assert status == 200 and body["user"]["id"] == ann.id
    await expect(ann.testid("chat-view")).to_be_visible()
