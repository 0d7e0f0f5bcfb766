// Inviting users to private rooms: found by name (the search under the members of a private
// room; by id too, folded away), or from a member's "Invite" button (a dialog to pick one of
// the user's private rooms).

import { $, el, listen } from "./dom.js";
import { UserSearch, searchParts } from "./people-ui.js";

/**
 * @param ctx {signal, invite(roomId, userId), privateRooms(), nameOf(id, fallback), call, me}
 * @param currentRoom () => the room shown in the members panel
 */
export function bindInvites(ctx, currentRoom) {
  new UserSearch(ctx, searchParts("invite"), async (user) => {
    const room = currentRoom();
    if (!room) return;
    try {
      await ctx.invite(room.id, user.id);
      $("invite-status").textContent = `Invited ${user.name}.`;
    } catch (error) {
      $("invite-status").textContent = error.message;
    }
  }, "Invite");
  listen(ctx.signal, $("invite-form"), "submit", (event) => {
    event.preventDefault();
    inviteById(ctx, currentRoom());
  });
  const dialog = $("invite-dialog");
  listen(ctx.signal, $("invite-cancel"), "click", () => dialog.close());
  listen(ctx.signal, $("invite-pick-form"), "submit", async (event) => {
    event.preventDefault();
    const roomId = $("invite-room").value;
    if (!roomId) return;
    try {
      await ctx.invite(roomId, dialog.dataset.userId);
      dialog.close();
    } catch (error) {
      $("invite-pick-error").textContent = error.message;
    }
  });
}

async function inviteById(ctx, room) {
  const input = $("invite-user");
  const userId = input.value.trim();
  if (!userId || !room) return;
  try {
    await ctx.invite(room.id, userId);
    $("invite-status").textContent = `Invited ${userId}.`;
    input.value = "";
  } catch (error) {
    $("invite-status").textContent = error.message;
  }
}

export function openInvite(ctx, userId) {
  const dialog = $("invite-dialog");
  const rooms = ctx.privateRooms();
  dialog.dataset.userId = userId;
  $("invite-who").textContent = ctx.nameOf(userId, userId);
  $("invite-pick-error").textContent = rooms.length
    ? ""
    : "You have no private rooms yet: create one first.";
  $("invite-room").replaceChildren(
    ...rooms.map((room) => el("option", { value: room.id, text: room.name })),
  );
  dialog.showModal();
}
