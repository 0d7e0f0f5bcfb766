"""The web client against the server side of issue 16, in a real browser on the two nodes of the
shared stack: unread counts from the server (the same on every device), the "new messages"
divider, rooms marked read once seen, "Seen" in DMs, edits, deletes and reactions, live and
after a reload or a reconnect.

Every test here is marked ``needs_i16_server``: it fails against a server without those
features (run them with ``-m needs_i16_server``; leave them out with
``-m 'not needs_i16_server'``).
"""

from __future__ import annotations

import re

import pytest
from browser import WAIT_MS, Chatter, missing_browser, rest, tag, watch_page
from browser_fixtures import Open, create_room_via_ui, signed_in
from stack import Stack

_missing = missing_browser()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

from playwright.async_api import expect  # noqa: E402

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.needs_i16_server]
expect.set_options(timeout=WAIT_MS)


async def second_device(people: Open, who: Chatter, url: str) -> Chatter:
    """The same user signed in on another device (a browser context of its own), on `url`."""
    other = await people(url, who.name)
    other.email, other.password, other.id = who.email, who.password, who.id
    response = await other.context.request.post(
        url + "/api/login", data={"email": who.email, "password": who.password}
    )
    assert response.status == 200, await response.text()
    await other.page.goto(url)
    await expect(other.status).to_have_attribute("data-state", "connected")
    return other


async def join_via_browse(chatter: Chatter, room: str) -> None:
    await chatter.testid("browse-open").click()
    listed = chatter.page.locator(f'[data-testid="browse-item"][data-room="{room}"]')
    await listed.get_by_test_id("browse-join").click()
    await expect(chatter.testid("browse-dialog")).to_be_hidden()
    await expect(chatter.room(room)).to_have_attribute("aria-current", "page")


async def shared_room(ann: Chatter, bob: Chatter, name: str) -> str:
    room = f"{name.lower()}-{tag()}"
    await create_room_via_ui(ann, room, name)
    await join_via_browse(bob, room)
    return room


def row(chatter: Chatter, seq: int):
    return chatter.page.locator(f'[data-testid="message-list"] > [data-seq="{seq}"]')


# --- unread counts, mentions, read positions ------------------------------------------------------


async def test_unread_counts_come_from_the_server_and_clear_on_every_device(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    room = await shared_room(ann, bob, "Unread")
    await ann.room("lobby").click()
    await bob.send(f"one {tag()}")
    await bob.send(f"two, for @{ann.name} {tag()}")
    await bob.send(f"three {tag()}")
    entry = ann.room(room)
    await expect(entry.get_by_test_id("unread-badge")).to_have_text("3")
    await expect(entry.get_by_test_id("mention-badge")).to_have_text("@1")

    # A device opened afterwards knows nothing locally: the counts are the server's.
    phone = await second_device(people, ann, stack.url(1))
    await expect(phone.room(room).get_by_test_id("unread-badge")).to_have_text("3")
    await expect(phone.room(room).get_by_test_id("mention-badge")).to_have_text("@1")

    # Read on the first device: the other one's badges go away live (`read` event).
    await entry.click()
    await expect(entry.get_by_test_id("unread-badge")).to_be_hidden()
    await expect(phone.room(room).get_by_test_id("unread-badge")).to_be_hidden()
    await expect(phone.room(room).get_by_test_id("mention-badge")).to_be_hidden()
    await phone.page.reload()
    await expect(phone.status).to_have_attribute("data-state", "connected")
    await expect(phone.room(room)).to_have_count(1)
    await expect(phone.room(room).get_by_test_id("unread-badge")).to_be_hidden()


async def test_a_room_with_unread_messages_opens_at_the_new_messages_divider(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    room = await shared_room(ann, bob, "Divider")
    for n in range(30):
        await rest(ann, "POST", f"/api/rooms/{room}/messages", {"text": f"read already {n}"})
    await expect(ann.message("read already 29")).to_be_in_viewport()
    await ann.room("lobby").click()
    first_new = f"first unread {tag()}"
    await rest(bob, "POST", f"/api/rooms/{room}/messages", {"text": first_new})
    for n in range(132):  # 133 unread: more than one page (100) away from the newest
        await rest(bob, "POST", f"/api/rooms/{room}/messages", {"text": f"unread {n}"})
    await expect(ann.room(room).get_by_test_id("unread-badge")).to_have_text("99+")
    phone = await second_device(people, ann, stack.url(1))  # sees the read when it happens
    await expect(phone.room(room).get_by_test_id("unread-badge")).to_have_text("99+")

    await ann.page.reload()  # a fresh page: the newest page must reach back to the divider
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await ann.room(room).click()
    divider = ann.page.locator('[data-testid="message-list"] [data-testid="new-divider"]')
    await expect(divider).to_have_count(1)
    await expect(divider).to_be_in_viewport()
    await expect(ann.message(first_new).get_by_test_id("new-divider")).to_have_count(1)
    await expect(ann.message("unread 131")).not_to_be_in_viewport()
    await ann.screenshot("new-messages-divider")
    # Not read until seen: scrolled to the newest message, the room is read everywhere.
    status, rooms = await rest(ann, "GET", "/api/rooms")
    assert status == 200
    info = next(r for r in rooms["rooms"] if r["id"] == room)
    assert info["unread"] == 100, info  # 100: "more than 99"
    await ann.testid("message-scroller").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    await expect(ann.message("unread 131")).to_be_in_viewport()
    await expect(phone.room(room).get_by_test_id("unread-badge")).to_be_hidden()
    status, rooms = await rest(ann, "GET", "/api/rooms")
    assert next(r for r in rooms["rooms"] if r["id"] == room)["unread"] == 0
    await ann.page.reload()
    await ann.room(room).click()
    await expect(ann.message("unread 131")).to_be_in_viewport()
    await expect(divider).to_have_count(0)


async def test_seen_in_a_dm_follows_receipts_and_the_setting(stack: Stack, people: Open):
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")  # Bob is in her member list
    await ann.member(bob.id).hover()
    await ann.member(bob.id).get_by_test_id("member-dm").click()
    first = f"did you read this? {tag()}"
    await ann.send(first)
    seen = ann.page.locator('[data-testid="message-list"] [data-testid="seen-marker"]')
    await expect(ann.message(first)).to_have_count(1)
    await expect(seen).to_have_count(0)
    dm = "dm:" + ":".join(sorted((ann.id, bob.id)))
    await bob.room(dm).click()
    await expect(bob.message(first)).to_be_in_viewport()
    await expect(ann.message(first).get_by_test_id("seen-marker")).to_have_text("Seen")
    await expect(seen).to_have_count(1)
    await ann.screenshot("dm-seen")

    # Bob turns receipts off: Ann's next message is read without her seeing so.
    toggle = bob.testid("receipts-toggle")
    await expect(toggle).to_be_checked()
    await toggle.uncheck()
    await expect(toggle).not_to_be_checked()
    second = f"and this? {tag()}"
    await ann.send(second)
    await expect(bob.message(second)).to_be_in_viewport()
    await ann.page.reload()
    await ann.room(dm).click()
    await expect(ann.message(second)).to_have_count(1)
    await expect(ann.message(second).get_by_test_id("seen-marker")).to_have_count(0)
    await toggle.check()
    await expect(toggle).to_be_checked()


# --- edits, deletes, reactions --------------------------------------------------------------------


async def test_edit_delete_and_react_live_after_a_reload_and_after_a_reconnect(
    stack: Stack, people: Open
):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    room = await shared_room(ann, bob, "Changes")
    typo, fixed, secret = f"teh plan {tag()}", f"the plan {tag()}", f"my password is {tag()}"
    await ann.send(typo)
    await ann.send(secret)
    await bob.send(f"bob's own {tag()}")
    for who in (ann, bob):
        await expect(who.message(secret)).to_have_count(1)

    # Only one's own messages have Edit and Delete.
    theirs = ann.messages.filter(has_text="bob's own")
    await expect(theirs.get_by_test_id("message-edit")).to_have_count(0)
    await expect(theirs.get_by_test_id("react-open")).to_have_count(1)

    mine = ann.message(typo)
    await mine.hover()
    await mine.get_by_test_id("message-edit").click()
    await mine.get_by_test_id("edit-input").fill(fixed)
    await mine.get_by_test_id("edit-input").press("Enter")
    await expect(bob.message(fixed).get_by_test_id("message-edited")).to_have_text("(edited)")
    await expect(bob.message(typo)).to_have_count(0)
    secret_seq = int(await ann.message(secret).get_attribute("data-seq"))
    await ann.message(secret).hover()
    await ann.message(secret).get_by_test_id("message-delete").click()
    await ann.message(secret).get_by_test_id("delete-confirm").click()
    for who in (ann, bob):
        await expect(row(who, secret_seq).get_by_test_id("message-deleted")).to_be_visible()
        await expect(who.page.get_by_text(secret)).to_have_count(0)

    target = bob.message(fixed)
    await target.hover()
    await target.get_by_test_id("react-open").click()
    await target.locator('[data-testid="react-choice"][data-emoji="👍"]').click()
    thumbs = '[data-testid="reaction"][data-emoji="👍"]'
    await expect(ann.message(fixed).locator(thumbs)).to_have_text("👍 1")
    await expect(ann.message(fixed).locator(thumbs)).to_have_attribute("aria-pressed", "false")
    await ann.message(fixed).locator(thumbs).click()  # Ann adds hers
    await expect(bob.message(fixed).locator(thumbs)).to_have_text("👍 2")
    await expect(ann.message(fixed).locator(thumbs)).to_have_attribute("aria-pressed", "true")
    await ann.message(fixed).hover()
    await ann.screenshot("edited-deleted-reacted")

    # The current state from history after a reload, the reader's own reactions included.
    await bob.page.reload()
    await bob.room(room).click()
    await expect(bob.message(fixed).locator(thumbs)).to_have_text("👍 2")
    await expect(bob.message(fixed).locator(thumbs)).to_have_attribute("aria-pressed", "true")
    await expect(row(bob, secret_seq).get_by_test_id("message-deleted")).to_be_visible()
    await expect(bob.page.get_by_text(secret)).to_have_count(0)

    # Away while things change: the reconnect's sync brings every change, in order.
    doomed = f"soon gone {tag()}"
    await ann.send(doomed)
    await expect(bob.message(doomed)).to_have_count(1)
    doomed_seq = int(await ann.message(doomed).get_attribute("data-seq"))
    await bob.context.set_offline(True)
    await expect(bob.status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    again = f"the final plan {tag()}"
    mine = ann.message(fixed)
    await mine.hover()
    await mine.get_by_test_id("message-edit").click()
    await mine.get_by_test_id("edit-input").fill(again)
    await mine.get_by_test_id("edit-save").click()
    await expect(ann.message(again)).to_have_count(1)
    await ann.message(again).locator(thumbs).click()  # Ann takes hers back
    await expect(ann.message(again).locator(thumbs)).to_have_text("👍 1")
    await ann.message(doomed).hover()
    await ann.message(doomed).get_by_test_id("message-delete").click()
    await ann.message(doomed).get_by_test_id("delete-confirm").click()
    await expect(row(ann, doomed_seq).get_by_test_id("message-deleted")).to_be_visible()
    await bob.context.set_offline(False)
    await expect(bob.status).to_have_attribute("data-state", "connected")
    await expect(bob.message(again).locator(thumbs)).to_have_text("👍 1")
    await expect(bob.message(fixed)).to_have_count(0)
    await expect(row(bob, doomed_seq).get_by_test_id("message-deleted")).to_be_visible()
    await expect(bob.page.get_by_text(doomed)).to_have_count(0)


async def test_a_second_tab_sees_my_reactions_as_mine(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    text = f"react to me {tag()}"
    await ann.send(text)
    tab = await ann.context.new_page()
    watch_page(ann, tab)
    await tab.goto(ann.url)
    second = Chatter(ann.context, tab, ann.url, ann.name, ann.email, ann.password, ann.id)
    await expect(second.message(text)).to_have_count(1)
    await ann.message(text).hover()
    await ann.message(text).get_by_test_id("react-open").click()
    await ann.message(text).locator('[data-testid="react-choice"][data-emoji="🎉"]').click()
    chip = second.message(text).locator('[data-testid="reaction"][data-emoji="🎉"]')
    await expect(chip).to_have_text("🎉 1")
    await expect(chip).to_have_attribute("aria-pressed", "true")


async def test_a_reconnect_does_not_count_missed_messages_twice(stack: Stack, people: Open):
    """The session after a reconnect counts the messages missed meanwhile; the sync that brings
    them must not add them to the count again (the room was loaded before, so it is synced)."""
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    room = await shared_room(ann, bob, "Reconnect")
    hello = f"hello {tag()}"
    await bob.send(hello)
    await expect(ann.message(hello)).to_be_in_viewport()
    await ann.room("lobby").click()
    await ann.context.set_offline(True)
    await expect(ann.status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    for n in range(2):
        await bob.send(f"while Ann was away {n} {tag()}")
    await ann.context.set_offline(False)
    await expect(ann.status).to_have_attribute("data-state", "connected")
    badge = ann.room(room).get_by_test_id("unread-badge")
    await expect(badge).to_have_text("2")
    later = f"and one more {tag()}"
    await bob.send(later)
    await expect(badge).to_have_text("3")
    await ann.room(room).click()
    await expect(ann.message(later)).to_be_in_viewport()
    await expect(badge).to_be_hidden()
