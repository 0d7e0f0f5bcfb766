// Roles in a room (owner, admin, member), what each may do, and the one-line notice of a
// moderation entry (a `message` with `kind: "moderation"`: kick, ban, unban, mute, unmute,
// role, transfer). The server decides every action again: this only hides what would be
// refused anyway.

import { el, timeOf } from "./dom.js";

export const ROLE_LABELS = { owner: "Owner", admin: "Admin", member: "Member" };

/** Durations offered for a ban (null: until unbanned) and a mute (seconds). */
export const DURATIONS = [
  [600, "10 minutes"],
  [3600, "1 hour"],
  [86400, "1 day"],
  [604800, "7 days"],
];

export const isModeration = (message) => message.kind === "moderation";

/** Whether `role` moderates (kick, ban, mute, delete any message). */
export const moderates = (role) => role === "owner" || role === "admin";

/** Whether a `role` may act on a member whose role is `theirs` (the server's rule). */
export function mayModerate(role, theirs) {
  if (!moderates(role) || theirs === "owner") return false;
  return role === "owner" || theirs !== "admin";
}

/** Whether the caller may invite to `room` (a managed room: its owners and admins). */
export function mayInvite(room) {
  if (room.kind !== "private") return false;
  return !room.managed || moderates(room.role);
}

/** The notice of a moderation entry: "Ann banned Bob until …". */
export function moderationText(entry, nameOf, meId) {
  const actor = entry.from.id === meId ? "You" : nameOf(entry.from.id, entry.from.name);
  const target = entry.user || { id: "", name: "someone" };
  const who = target.id === meId ? "you" : nameOf(target.id, target.name);
  const until = entry.until ? ` until ${timeOf(entry.until).full}` : "";
  switch (entry.action) {
    case "kick":
      return `${actor} removed ${who} from the room`;
    case "ban":
      return `${actor} banned ${who}${until}`;
    case "unban":
      return `${actor} lifted the ban on ${who}`;
    case "mute":
      return `${actor} muted ${who}${until}`;
    case "unmute":
      return `${actor} unmuted ${who}`;
    case "role":
      return entry.role === "admin"
        ? `${actor} made ${who} an admin`
        : `${actor} made ${who} a member (no longer an admin)`;
    case "transfer":
      return `${actor} handed the room over to ${who}: ${who} ${who === "you" ? "are" : "is"} the owner now`;
    default:
      return `${actor} moderated ${who}`;
  }
}

/**
 * The row of a moderation entry: one line of system text, never a message bubble.
 * @param extra a node after the text (an "Unban" button for moderators), or null
 */
export function renderNotice(entry, text, extra = null) {
  const time = timeOf(entry.ts);
  return el(
    "li",
    {
      class: "notice",
      "data-testid": "moderation-notice",
      "data-seq": entry.seq,
      "data-action": entry.action,
      "data-target-id": entry.user ? entry.user.id : "",
      role: "note",
    },
    el("span", { class: "notice-text", "data-testid": "notice-text", text }),
    el("time", { class: "msg-time", datetime: time.iso, title: time.full, text: time.short }),
    extra,
  );
}

/**
 * The roles of a room after a `role` or `transfer` entry: `[[userId, role], …]` to apply.
 */
export function roleChanges(entry) {
  if (entry.action === "role") return [[entry.user.id, entry.role]];
  if (entry.action === "transfer") return [[entry.from.id, "admin"], [entry.user.id, "owner"]];
  if (entry.action === "kick" || entry.action === "ban") return [[entry.user.id, "member"]];
  return [];
}
