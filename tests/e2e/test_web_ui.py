"""The web client's reading comforts in a real browser against the two nodes of the shared
stack (issue 16, item 6, the parts that need no new server feature): day separators and full
dates, grouped messages, the "new messages below" pill, drafts kept per room, the badge on
the phone's menu button, the phone's long titles, live members and their search, @mentions
and desktop notifications.  Same rules as ``test_web_browser.py``: every wait is on a
condition, and no page may show a dialog, throw or break the CSP.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from browser import PHONE, WAIT_MS, Chatter, missing_browser, register_via_api, rest, tag
from browser_fixtures import Open, create_room_via_ui, signed_in
from stack import Stack

_missing = missing_browser()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

from playwright.async_api import expect  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")
expect.set_options(timeout=WAIT_MS)

DAY_MS = 86_400_000
DAYS_AGO = re.compile(r"\[days-ago:(\d+)\]")
BERLIN = ZoneInfo("Europe/Berlin")  # the browser contexts' time zone (browser.open_chatter)


def _backdate(value: object) -> None:
    """Move every message whose text says ``[days-ago:N]`` N days into the past."""
    if isinstance(value, list):
        for item in value:
            _backdate(item)
    elif isinstance(value, dict):
        text = value.get("text")
        found = DAYS_AGO.search(text) if isinstance(text, str) else None
        if found and isinstance(value.get("ts"), int):
            value["ts"] -= int(found[1]) * DAY_MS
        for item in value.values():
            _backdate(item)


async def backdating(chatter: Chatter) -> None:
    """Rewrite the Socket.IO frames to the page (events ``42…`` and acks ``43<id>…``): the
    server's ``ts`` of marked messages moves into the past, in live events and history alike."""

    def rewrite(frame: str | bytes) -> str | bytes:
        head = re.match(r"^4[23]\d*", frame) if isinstance(frame, str) else None
        if not head or "days-ago" not in frame:
            return frame
        data = json.loads(frame[head.end() :])
        _backdate(data)
        return head[0] + json.dumps(data)

    async def route(ws) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(lambda frame: ws.send(rewrite(frame)))

    await chatter.page.route_web_socket(re.compile(r"/socket\.io/"), route)


async def join_via_browse(chatter: Chatter, room: str) -> None:
    await chatter.testid("browse-open").click()
    listed = chatter.page.locator(f'[data-testid="browse-item"][data-room="{room}"]')
    await listed.get_by_test_id("browse-join").click()
    await expect(chatter.testid("browse-dialog")).to_be_hidden()
    await expect(chatter.room(room)).to_have_attribute("aria-current", "page")


# --- days and groups ----------------------------------------------------------------------------


async def test_day_separators_full_dates_and_grouped_authors(stack: Stack, people: Open):
    ann = await people(stack.url(0), f"Ann {tag()}")
    await backdating(ann)
    await register_via_api(ann)
    await expect(ann.status).to_have_attribute("data-state", "connected")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    room = f"days-{tag()}"
    await create_room_via_ui(ann, room, "Days")
    await join_via_browse(bob, room)
    lines = [
        (ann, "[days-ago:3] three days ago"),
        (ann, "[days-ago:3] same author, same minute"),
        (bob, "[days-ago:1] yesterday"),
        (ann, f"today {tag()}"),
        (ann, f"today again {tag()}"),
        (bob, f"today, someone else {tag()}"),
    ]
    for who, text in lines:
        status, _ = await rest(who, "POST", f"/api/rooms/{room}/messages", {"text": text})
        assert status == 201
    then = datetime.now(BERLIN) - timedelta(days=3)

    for reloaded in (False, True):  # live events first, then the history page
        if reloaded:
            await ann.page.reload()
            await expect(ann.room(room)).to_have_attribute("aria-current", "page")
        await expect(ann.messages).to_have_count(len(lines))
        separators = ann.page.locator('[data-testid="message-list"] [data-testid="day-separator"]')
        await expect(separators).to_have_count(3)
        texts = await separators.all_inner_texts()
        assert texts[1:] == ["Yesterday", "Today"], texts
        for word in (then.strftime("%A"), then.strftime("%B"), str(then.year), str(then.day)):
            assert word in texts[0], (word, texts)
        grouped = await ann.messages.evaluate_all(
            "(items) => items.map((li) => li.dataset.grouped)"
        )
        assert grouped == ["false", "true", "false", "false", "true", "false"], grouped
        # A grouped message's author is still there for screen readers and tests, not shown.
        second = ann.message(lines[1][1]).get_by_test_id("message-author")
        await expect(second).to_have_text(ann.name)
        old = ann.message(lines[0][1]).get_by_test_id("message-time")
        await expect(old).to_have_attribute(
            "title", re.compile(then.strftime("%A") + ".*" + str(then.year))
        )


# --- the "new messages below" pill -----------------------------------------------------------


async def test_a_message_arriving_while_scrolled_up_shows_a_pill(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    for n in range(40):
        status, _ = await rest(ann, "POST", "/api/rooms/lobby/messages", {"text": f"filler {n}"})
        assert status == 201
    pill = ann.testid("new-below")
    scroller = ann.testid("message-scroller")
    at_bottom = f"seen at the bottom {tag()}"
    await bob.send(at_bottom)
    await expect(ann.message(at_bottom)).to_be_in_viewport()
    await expect(pill).to_be_hidden()

    for leave_by in ("pill", "scrolling"):
        await scroller.evaluate("(el) => { el.scrollTop = 0; }")
        text = f"arrives while scrolled up ({leave_by}) {tag()}"
        await bob.send(text)
        await expect(ann.message(text)).to_have_count(1)
        await expect(pill).to_be_visible()
        await expect(pill).to_be_in_viewport()
        await expect(ann.message(text)).not_to_be_in_viewport()
        if leave_by == "pill":
            await pill.click()
        else:
            await scroller.evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
        await expect(pill).to_be_hidden()
        await expect(ann.message(text)).to_be_in_viewport()
    # One's own message scrolls down by itself and shows no pill.
    await scroller.evaluate("(el) => { el.scrollTop = 0; }")
    mine = f"my own {tag()}"
    await ann.send(mine)
    await expect(ann.message(mine)).to_be_in_viewport()
    await expect(pill).to_be_hidden()


# --- drafts ---------------------------------------------------------------------------------------


async def test_the_draft_of_each_room_survives_switching_and_reloading(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    room = f"drafts-{tag()}"
    await create_room_via_ui(ann, room, "Drafts")
    await ann.composer.fill("half a thought\nand a second line")
    await ann.room("lobby").click()
    await expect(ann.composer).to_have_value("")
    await ann.composer.fill("for the lobby")
    await ann.room(room).click()
    await expect(ann.composer).to_have_value("half a thought\nand a second line")

    await ann.page.reload()
    await expect(ann.room(room)).to_have_attribute("aria-current", "page")
    await expect(ann.composer).to_have_value("half a thought\nand a second line")
    await ann.room("lobby").click()
    await expect(ann.composer).to_have_value("for the lobby")
    await ann.composer.press("Enter")  # sent: the draft is gone
    await expect(ann.message("for the lobby")).to_have_count(1)
    await ann.page.reload()
    await expect(ann.room("lobby")).to_have_attribute("aria-current", "page")
    await expect(ann.composer).to_have_value("")

    # Signing out forgets every draft: the next person at this browser finds none.
    await ann.testid("logout").click()
    await expect(ann.testid("login-form")).to_be_visible()
    await expect(ann.composer).to_have_value("")
    stored = await ann.page.evaluate("JSON.stringify({...localStorage})")
    assert "half a thought" not in stored, stored


# --- phones -------------------------------------------------------------------------------------


async def test_the_phone_menu_button_shows_news_from_other_rooms(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}", viewport=PHONE)
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    badge = ann.testid("drawer-badge")
    await expect(badge).to_be_hidden()
    in_view = f"in the lobby Ann is reading {tag()}"
    await bob.send(in_view)
    await expect(ann.message(in_view)).to_have_count(1)
    await expect(badge).to_be_hidden()

    await bob.member(ann.id).hover()
    await bob.member(ann.id).get_by_test_id("member-dm").click()
    for n in (1, 2):
        await bob.send(f"psst {n} {tag()}")
        await expect(badge).to_have_text(str(n))
    await expect(badge).to_be_visible()
    await expect(badge).to_be_in_viewport()
    await ann.screenshot("phone-badge")

    await ann.testid("drawer-toggle").tap()
    dm = "dm:" + ":".join(sorted((ann.id, bob.id)))
    await expect(ann.room(dm).get_by_test_id("unread-badge")).to_have_text("2")
    await ann.room(dm).tap()
    await expect(ann.testid("room-title")).to_have_text(bob.name)
    await expect(badge).to_be_hidden()


async def test_a_long_room_title_ends_in_an_ellipsis_on_a_phone(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}", viewport=PHONE)
    name = "A very long room name that keeps on going well past the pill"
    await ann.testid("drawer-toggle").tap()
    await create_room_via_ui(ann, f"long-{tag()}", name)
    title, pill = ann.testid("room-title"), ann.status
    await expect(title).to_be_in_viewport()
    title_box, pill_box = await title.bounding_box(), await pill.bounding_box()
    assert title_box and pill_box
    assert title_box["x"] + title_box["width"] <= pill_box["x"] + 0.5, (title_box, pill_box)
    clipped = await title.evaluate("(h) => h.scrollWidth > h.clientWidth")
    assert clipped
    assert await title.evaluate("(h) => getComputedStyle(h).textOverflow") == "ellipsis"
    await ann.screenshot("phone-long-title")


# --- members ------------------------------------------------------------------------------------


async def test_members_appear_and_go_live_and_can_be_searched(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    room = f"members-{tag()}"
    await create_room_via_ui(ann, room, "Members")
    await expect(ann.member(ann.id)).to_have_count(1)
    await expect(ann.member(bob.id)).to_have_count(0)

    await join_via_browse(bob, room)
    # Live, from the `joined` event (well before any poll could have found him).
    await expect(ann.member(bob.id)).to_be_visible(timeout=5_000)
    await expect(ann.page.locator("#members-count")).to_have_text("(2)")

    search = ann.testid("member-search")
    await search.fill(bob.name.split()[1])  # his tag: only Bob
    await expect(ann.member(bob.id)).to_be_visible()
    await expect(ann.member(ann.id)).to_be_hidden()
    await search.fill(bob.id)  # ids are searched too
    await expect(ann.member(bob.id)).to_be_visible()
    await search.fill("nobody by this name")
    await expect(ann.member(bob.id)).to_be_hidden()
    await expect(ann.testid("member-search-empty")).to_be_visible()
    await search.fill("")
    await expect(ann.member(ann.id)).to_be_visible()
    await expect(ann.member(bob.id)).to_be_visible()
    await expect(ann.testid("member-search-empty")).to_be_hidden()

    await bob.testid("leave-room").click()
    await expect(ann.member(bob.id)).to_have_count(0, timeout=5_000)
    await expect(ann.page.locator("#members-count")).to_have_text("(1)")


async def test_a_new_account_shows_in_the_lobby_members_live(stack: Stack, people: Open):
    """No poll: the server announces a registration to the lobby, on every node."""
    ann = await signed_in(people, stack.url(0), f"Ann {tag()}")
    await expect(ann.member(ann.id)).to_have_count(1)  # the lobby is the room shown
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")
    await expect(ann.member(bob.id)).to_be_visible(timeout=5_000)


# --- mentions and notifications ---------------------------------------------------------------

# A stand-in for the Notification API, installed before the page's scripts: records every
# notification and every permission request; `window.__grant` is what the "user" answers.
FAKE_NOTIFICATIONS = """
window.__notes = []; window.__asked = 0; window.__permission = "default";
window.Notification = class {
  constructor(title, options) { window.__notes.push({ title, body: options && options.body }); }
  close() {}
  static get permission() { return window.__permission; }
  static async requestPermission() {
    window.__asked += 1;
    window.__permission = window.__grant || "denied";
    return window.__permission;
  }
};
"""


async def test_mentions_are_highlighted_counted_and_notified_when_asked(stack: Stack, people: Open):
    ann = await people(stack.url(0), f"Ann{tag()}")
    await ann.context.add_init_script(FAKE_NOTIFICATIONS)
    await register_via_api(ann)
    await expect(ann.status).to_have_attribute("data-state", "connected")
    bob = await signed_in(people, stack.url(1), f"Bob {tag()}")

    seen = f"hey @{ann.name.lower()}, look {tag()}"  # any case
    await bob.send(seen)
    item = ann.message(seen)
    await expect(item).to_have_attribute("data-mention", "true")
    await expect(item.get_by_test_id("mention")).to_have_text(f"@{ann.name.lower()}")
    await expect(bob.message(seen)).to_have_attribute("data-mention", "false")
    not_me = f"hey @{ann.name}x is someone else {tag()}"
    await bob.send(not_me)
    await expect(ann.message(not_me)).to_have_attribute("data-mention", "false")
    assert await ann.page.evaluate("[window.__asked, window.__notes.length]") == [0, 0]

    # Turned on: the browser is asked now, and a refusal turns the toggle off again.
    toggle = ann.testid("notify-toggle")
    await toggle.click()  # not check(): the page unchecks it again on the refusal
    await expect(toggle).not_to_be_checked()
    await expect(ann.testid("notify-note")).to_contain_text("blocked")
    await ann.page.evaluate("window.__grant = 'granted'")
    await toggle.check()
    await expect(toggle).to_be_checked()
    assert await ann.page.evaluate("window.__asked") == 2

    looking = f"@{ann.name} while you look at the lobby {tag()}"
    await bob.send(looking)
    await expect(ann.message(looking)).to_have_attribute("data-mention", "true")
    assert await ann.page.evaluate("window.__notes.length") == 0  # shown already

    await create_room_via_ui(ann, f"elsewhere-{tag()}", "Elsewhere")
    away = f"@{ann.name} are you there? {tag()}"
    await bob.send(away)
    await bob.send(f"no mention in this one {tag()}")
    lobby = ann.room("lobby")
    await expect(lobby.get_by_test_id("unread-badge")).to_have_text("2")
    await expect(lobby.get_by_test_id("mention-badge")).to_have_text("@1")
    notes = await ann.page.evaluate("window.__notes")
    assert [n["body"] for n in notes] == [away], notes
    assert notes[0]["title"].startswith(f"{bob.name} in "), notes
    await lobby.click()
    await expect(lobby.get_by_test_id("mention-badge")).to_be_hidden()
    await expect(ann.message(away).get_by_test_id("mention")).to_have_text(f"@{ann.name}")
