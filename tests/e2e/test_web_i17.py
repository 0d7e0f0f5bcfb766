"""The web client against the server side of issue 17, in a real browser on the two nodes of the
shared stack: moderation entries as one-line notices, roles and the moderation menu, a kicked
or banned member's page dropping the room, managed rooms, finding people by name, blocking and
deleting one's account.

Every test here is marked ``needs_i17_server``: it fails against a server without those
features.
"""

from __future__ import annotations

import pytest
from browser import WAIT_MS, Chatter, missing_browser, rest, tag
from browser_fixtures import Open, create_room_via_ui, signed_in
from stack import Stack

_missing = missing_browser()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

from playwright.async_api import expect  # noqa: E402

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.needs_i17_server]
expect.set_options(timeout=WAIT_MS)


def notices(chatter: Chatter):
    return chatter.page.locator('[data-testid="message-list"] > [data-testid="moderation-notice"]')


async def join_via_browse(chatter: Chatter, room: str) -> None:
    await chatter.testid("browse-open").click()
    listed = chatter.page.locator(f'[data-testid="browse-item"][data-room="{room}"]')
    await listed.get_by_test_id("browse-join").click()
    await expect(chatter.testid("browse-dialog")).to_be_hidden()
    await expect(chatter.room(room)).to_have_attribute("aria-current", "page")


async def member_menu(chatter: Chatter, user_id: str):
    row = chatter.member(user_id)
    await row.hover()
    await row.get_by_test_id("member-menu").click()
    dialog = chatter.testid("member-dialog")
    await expect(dialog).to_be_visible()
    return dialog


async def find_and_pick(chatter: Chatter, search: str, results: str, who: Chatter) -> None:
    """Type the start of `who`'s name in a people search, pick `who` from the results."""
    await chatter.testid(search).fill(who.name.lower())  # a prefix, ignoring case
    found = chatter.testid(results).locator(f'[data-testid="user-result"][data-user-id="{who.id}"]')
    await found.get_by_test_id("user-pick").click()


async def test_roles_moderation_menu_and_notices_across_nodes(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    cy = await signed_in(people, stack.url(1), f"Cy{tag()}")
    room = f"mod-{tag()}"
    await create_room_via_ui(ann, room, "Moderated")
    await expect(ann.testid("room-role")).to_have_text("You: Owner")
    await join_via_browse(bob, room)
    await join_via_browse(cy, room)
    await expect(bob.testid("room-role")).to_have_text("You: Member")
    await expect(bob.member(ann.id).get_by_test_id("member-role")).to_have_text("Owner")
    await expect(bob.member(cy.id).get_by_test_id("member-role")).to_be_hidden()

    # A member's menu has no moderation; the owner's has it.
    dialog = await member_menu(bob, cy.id)
    await expect(dialog.get_by_test_id("menu-block")).to_be_visible()
    await expect(dialog.get_by_test_id("menu-kick")).to_have_count(0)
    await bob.page.keyboard.press("Escape")
    bobs = f"bob writes {tag()}"
    await bob.send(bobs)
    await expect(ann.message(bobs)).to_have_count(1)
    await expect(cy.message(bobs).get_by_test_id("message-delete")).to_have_count(0)

    # The owner makes Bob an admin: a notice everywhere, badges follow, Bob may moderate.
    dialog = await member_menu(ann, bob.id)
    await ann.screenshot("member-menu")
    await dialog.get_by_test_id("menu-make-admin").click()
    await expect(dialog).to_be_hidden()
    for who in (ann, bob, cy):
        await expect(notices(who).last).to_have_attribute("data-action", "role")
        await expect(who.member(bob.id).get_by_test_id("member-role")).to_have_text("Admin")
    await expect(notices(cy).last).to_contain_text(f"made {bob.name} an admin")
    await expect(notices(bob).last).to_contain_text("made you an admin")
    await expect(bob.testid("room-role")).to_have_text("You: Admin")

    # The admin mutes Cy for 10 minutes: Cy's next message is refused, clearly.
    dialog = await member_menu(bob, cy.id)
    await dialog.get_by_test_id("menu-mute-duration").select_option("600")
    await dialog.get_by_test_id("menu-mute").click()
    await expect(notices(cy).last).to_contain_text(f"{bob.name} muted you until")
    await cy.send(f"let me speak {tag()}")
    await expect(cy.testid("pending-state")).to_contain_text("muted")

    # The owner deletes Bob's message: removed by a moderator, live on both nodes.
    seq = await ann.message(bobs).get_attribute("data-seq")
    await ann.message(bobs).hover()
    await ann.message(bobs).get_by_test_id("message-delete").click()
    await ann.message(bobs).get_by_test_id("delete-confirm").click()
    for who in (ann, bob, cy):
        tomb = who.page.locator(f'[data-testid="message-list"] > [data-seq="{seq}"]')
        await expect(tomb.get_by_test_id("message-deleted")).to_have_text(
            "This message was removed by a moderator."
        )

    # The admin bans Cy: Cy's page drops the room at once and says why; Ann sees the notice.
    dialog = await member_menu(bob, cy.id)
    await dialog.get_by_test_id("menu-ban").click()
    await expect(cy.room(room)).to_have_count(0)
    await expect(cy.testid("room-notice")).to_contain_text(f"{bob.name} banned you")
    await expect(cy.testid("room-title")).not_to_have_text("Moderated")
    await expect(notices(ann).last).to_contain_text(f"{bob.name} banned {cy.name}")
    await expect(ann.member(cy.id)).to_have_count(0)
    await expect(notices(ann)).to_have_count(3)  # role, mute, ban: never message bubbles
    await expect(ann.messages.filter(has_text="banned")).to_have_count(0)

    # The ban notice offers "Unban" to moderators; after it Cy may join again.
    await notices(ann).last.get_by_test_id("notice-unban").click()
    await expect(notices(bob).last).to_contain_text(f"lifted the ban on {cy.name}")
    await join_via_browse(cy, room)
    # History shows the entries as notices too (after a reload).
    await ann.page.reload()
    await ann.room(room).click()
    await expect(notices(ann)).to_have_count(4)
    tomb = ann.page.locator(f'[data-testid="message-list"] > [data-seq="{seq}"]')
    await expect(tomb.get_by_test_id("message-deleted")).to_contain_text("by a moderator")
    await ann.screenshot("moderation-notices")

    # Kick, and a transfer: the owner hands the room to Bob and becomes an admin.
    dialog = await member_menu(ann, cy.id)
    await dialog.get_by_test_id("menu-kick").click()
    await expect(cy.room(room)).to_have_count(0)
    await expect(cy.testid("room-notice")).to_contain_text("removed you")
    dialog = await member_menu(ann, bob.id)
    await dialog.get_by_test_id("menu-transfer").click()
    await dialog.get_by_test_id("menu-transfer-confirm").click()
    await expect(bob.testid("room-role")).to_have_text("You: Owner")
    await expect(ann.testid("room-role")).to_have_text("You: Admin")
    await expect(ann.member(bob.id).get_by_test_id("member-role")).to_have_text("Owner")


async def test_managed_room_invites_by_name_and_only_admins_invite(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    cy = await signed_in(people, stack.url(0), f"Cy{tag()}")
    room = f"team-{tag()}"
    await ann.testid("create-open").click()
    await ann.testid("create-id").fill(room)
    await ann.testid("create-name").fill("Team")
    await ann.testid("create-managed").check()
    await ann.testid("create-limit").fill("5")
    await ann.testid("create-submit").click()
    await expect(ann.testid("room-title")).to_have_text("Team")
    await expect(ann.testid("room-kind")).to_have_text("Managed room · up to 5 members")

    # Invite by name: Bob is found by the start of his name, never by an id.
    await find_and_pick(ann, "invite-search", "invite-results", bob)
    await expect(ann.testid("invite-status")).to_have_text(f"Invited {bob.name}.")
    await expect(bob.room(room)).to_have_count(1)
    await bob.room(room).click()
    await expect(bob.testid("room-role")).to_have_text("You: Member")
    await expect(bob.testid("invite-form")).to_be_hidden()  # managed: members do not invite
    # The owner's settings change reaches the open page of a member on the other node.
    status, _ = await rest(ann, "PATCH", f"/api/rooms/{room}", {"member_limit": 3})
    assert status == 200
    await expect(bob.testid("room-kind")).to_have_text("Managed room · up to 3 members")
    await expect(bob.testid("room-role")).to_have_text("You: Member")
    await expect(bob.member(ann.id).get_by_test_id("member-role")).to_have_text("Owner")
    await expect(ann.testid("invite-form")).to_be_visible()
    await expect(cy.room(room)).to_have_count(0)
    # A member's "Invite" on someone offers no managed room of which they are no admin.
    await bob.room("lobby").click()
    await bob.member(cy.id).hover()
    await bob.member(cy.id).get_by_test_id("member-invite").click()
    await expect(bob.testid("invite-room").locator("option")).to_have_count(0)


async def test_new_dm_by_name_blocking_and_account_deletion(stack: Stack, people: Open):
    ann = await signed_in(people, stack.url(0), f"Ann{tag()}")
    bob = await signed_in(people, stack.url(1), f"Bob{tag()}")
    await ann.testid("dm-open").click()
    await find_and_pick(ann, "dm-search", "dm-results", bob)
    await expect(ann.testid("dm-dialog")).to_be_hidden()
    await expect(ann.testid("room-title")).to_have_text(bob.name)
    hello = f"hello {tag()}"
    await ann.send(hello)
    dm = "dm:" + ":".join(sorted((ann.id, bob.id)))
    await bob.room(dm).click()
    await expect(bob.message(hello)).to_have_count(1)

    # Bob blocks Ann from the DM header: Ann's next message is refused, clearly.
    await bob.testid("dm-block").click()
    await expect(bob.testid("dm-block")).to_have_text("Unblock")
    await expect(bob.testid("blocked-note")).to_be_visible()
    await ann.send(f"are you there? {tag()}")
    await expect(ann.testid("pending-state")).to_contain_text("cannot receive your messages")
    await bob.testid("dm-block").click()
    await expect(bob.testid("blocked-note")).to_be_hidden()
    await expect(bob.testid("dm-block")).to_have_text("Block")

    # Ann deletes her account: a wrong password changes nothing; the right one signs her out.
    await ann.testid("delete-open").click()
    await ann.testid("delete-password").fill("not my password")
    await ann.testid("delete-submit").click()
    await expect(ann.testid("delete-error")).to_have_text("Wrong password.")
    await expect(ann.status).to_have_attribute("data-state", "connected")
    await ann.testid("delete-password").fill(ann.password)
    await ann.testid("delete-submit").click()
    await expect(ann.testid("auth-view")).to_be_visible()
    await expect(ann.testid("auth-error")).to_have_text("Your account was deleted.")
    status, _ = await rest(bob, "GET", f"/api/users/{ann.id}")
    assert status == 404
    # Bob's page learns it live: her messages are from "Deleted user" now.
    await expect(bob.message(hello).get_by_test_id("message-author")).to_have_text("Deleted user")
