// What the page does with each message from the server (a live event, an ack, a sync answer,
// a page after a reconnect): keep it in its room in seq order, apply change entries to their
// targets, count what is unread and what mentions the user, and mark rooms read once seen.

import { applyChange, changeRequests, isChange } from "./changes.js";
import { $ } from "./dom.js";
import * as rooms from "./membership.js";
import { mentions } from "./message-item.js";
import { isModeration, moderates, moderationText, roleChanges } from "./roles.js";

/** A message from the server (live event, ack, sync or history after). */
export function ingest(chat, message, { live }) {
  let room = chat.rooms.get(message.room);
  const mine = message.from.id === chat.me.id;
  const change = isChange(message);
  if (!room) room = rooms.unknownRoom(chat, message, mine);
  if (room.draft) room.draft = false;
  if (mine && message.cid && !change) chat.outbox.settle(message.cid);
  const moderation = isModeration(message);
  if (live) {
    chat.learnName(message.from.id, message.from.name);
    if (!change) chat.typing.stopped(room.id, message.from.id);
    // A moderator need not be a member (a service admin): a moderation entry proves nothing.
    if (!moderation) chat.members.active(room.id, message.from);
  }
  const newer = message.seq > room.top;
  if (room.keeps) {
    const index = room.add(message);
    if (index >= 0) {
      chat.view.inserted(room, message, index);
      // Only a target held before its change arrived takes it: one read later is current.
      if (change && !moderation) changed(chat, room, message);
    }
  } else if (newer) {
    room.top = message.seq;
  }
  // Only live entries move roles: an old page's entries are history, the session is current.
  if (moderation && live && newer) moderated(chat, room, message);
  if (!newer || change) return;
  counted(chat, room, message, { live, mine });
}

function changed(chat, room, change) {
  const target = room.bySeq.get(change.target_seq);
  if (!target) return;
  // A moderator's delete counted already by a read still changes the tombstone's words.
  if (applyChange(target, change, chat.me.id) || change.by_moderator) {
    chat.view.refresh(room, target.seq);
  }
}

/** A moderation entry as it happens: roles move, and the target learns what happened. */
function moderated(chat, room, entry) {
  const me = chat.me.id;
  for (const [userId, role] of roleChanges(entry)) {
    chat.members.setRole(room.id, userId, role);
    if (userId === me) room.role = role;
  }
  if (roleChanges(entry).some(([userId]) => userId === me)) chat.roleChanged(room);
  if (!entry.user || entry.user.id !== me) return;
  const text = moderationText(entry, (id, name) => chat.nameOf(id, name), me);
  if (entry.action === "kick" || entry.action === "ban") chat.removedWhy.set(room.id, text);
  if (entry.action === "mute" && room.id === chat.current) $("send-error").textContent = text;
}

/** A new plain message: unread (and mentioning the user) unless the room is on screen. */
function counted(chat, room, message, { live, mine }) {
  const mentioned = mentions(message, chat.me);
  const shown = room.id === chat.current;
  if (mentioned && live) chat.notifier.mentioned(message, room.name, shown && !document.hidden);
  // One's own message from another device reads the room, unless the server counts: its
  // count of others' messages stays what it is.
  if (shown || (mine && !room.serverRead)) {
    markRead(chat, room);
    return;
  }
  if (mine || message.seq <= (room.countedTo || 0)) return; // mine, or counted already
  room.unread += 1;
  if (mentioned) room.mentions += 1;
  chat.sidebar.render();
  chat.updateTitle();
}

/** The room is (being) shown: no badge; the server learns the position once it is seen. */
export function markRead(chat, room) {
  room.unread = 0;
  room.mentions = 0;
  chat.marks.set(room.id, room.top);
  chat.sidebar.render();
  chat.updateTitle();
  if (room.id === chat.current) seenCurrent(chat);
}

/** The shown room's newest message is on screen in a visible tab: it is read. */
export function seenCurrent(chat) {
  const room = chat.rooms.get(chat.current);
  if (!room || room.status !== "loaded" || document.hidden || !chat.view.nearBottom()) return;
  chat.reading.seen(room);
}

/** What the message rows' buttons do (message-actions.js). */
export function messageActions(chat) {
  const requests = changeRequests(chat.connection);
  const settle = (ack) => {
    if (ack.message) ingest(chat, ack.message, { live: false }); // null: nothing changed
  };
  return {
    me: () => chat.me,
    moderates: (roomId) => moderates(chat.rooms.get(roomId)?.role),
    /** kick, ban, unban, mute, unmute, role, transfer: the entry comes back in the ack. */
    moderate: async (action, roomId, userId, extra = {}) => {
      const ack = await chat.connection.call(action, { room: roomId, user: userId, ...extra });
      if (ack.message) ingest(chat, ack.message, { live: true });
      return ack;
    },
    react: async (message, emoji, on) => settle(await requests.react(message, emoji, on)),
    edit: async (message, text) => settle(await requests.edit(message, text)),
    remove: async (message) => settle(await requests.remove(message)),
    failed: (error) => {
      $("send-error").textContent = error.message;
    },
  };
}
