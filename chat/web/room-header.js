// The header of the room shown: its name, its kind (managed, a member limit), the reader's
// role, and in a DM the Block / Unblock button; and the note of why a room went away.

import { $, show } from "./dom.js";
import { ROLE_LABELS, mayInvite } from "./roles.js";

const KIND_LABELS = {
  lobby: "Everyone is here",
  public: "Public room",
  private: "Private room",
  dm: "Direct message",
};

function kindLabel(room) {
  let label = room.managed && room.kind === "private" ? "Managed room" : KIND_LABELS[room.kind];
  if (room.memberLimit) label += ` · up to ${room.memberLimit} members`;
  return label;
}

/** @param chat the Chat (me, blocks) */
export function renderHeader(chat, room) {
  $("room-title").textContent = room.name;
  $("room-kind").textContent = kindLabel(room);
  const ranked = room.kind === "public" || room.kind === "private";
  const role = $("room-role");
  show(role, ranked);
  role.dataset.role = room.role;
  role.textContent = `You: ${ROLE_LABELS[room.role] || room.role}`;
  show($("leave-room"), ranked);
  show($("invite-form"), mayInvite(room));
  const peer = room.kind === "dm" ? room.peer(chat.me.id) : null;
  const blocked = Boolean(peer) && chat.blocks.has(peer);
  show($("dm-block"), Boolean(peer));
  $("dm-block").textContent = blocked ? "Unblock" : "Block";
  $("dm-block").dataset.blocked = String(blocked);
  show($("blocked-note"), blocked);
  $("composer-input").placeholder = `Message ${room.kind === "dm" ? room.name : "#" + room.name}`;
}

/** The DM header's button: block or unblock the other person. */
export async function toggleDmBlock(chat) {
  const room = chat.rooms.get(chat.current);
  if (!room || room.kind !== "dm") return;
  const peer = room.peer(chat.me.id);
  try {
    await chat.blocks.set(peer, !chat.blocks.has(peer));
  } catch (error) {
    $("send-error").textContent = error.message;
  }
}

/** Say why the room the user was in went away (kicked, banned), or that it did. */
export function roomGone(name, why) {
  const notice = $("room-notice");
  notice.textContent = why ? `${why} (${name}).` : `You are no longer in ${name}.`;
  show(notice, true);
}

export function clearRoomNotice() {
  $("room-notice").textContent = "";
  show($("room-notice"), false);
}
