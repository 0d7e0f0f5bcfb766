// Edits, deletes and reactions. Each is a stream entry of its own (a `message` with a `kind`
// and the `target` / `target_seq` it changes); reads return plain messages in their current
// state (`edited_ts`, `deleted`, `reactions`, `my_reactions`, and `changed_seq`: the newest
// change that state reflects). A change entry is applied to a target held already, and only
// if it is newer than the target's `changed_seq`: a page can hold a message in its current
// state beside the entries that made it so, and a live entry can arrive after a read that
// counted it; neither is counted twice.

import { randomId } from "./dom.js";

/** A change entry (edit, delete, react), shown only through its target. */
export const isChange = (message) => typeof message.kind === "string";

/** Servers of issue 16 give messages ids that embed the seq ("<seq>.<random>"): only those
 * messages can be edited, deleted or reacted to. */
export const changeable = (message) =>
  !isChange(message) && typeof message.id === "string" && message.id.includes(".");

/**
 * Apply a change entry to its target message (in place). Returns whether the target changed.
 * @param meId the reader's user id (for `my_reactions`)
 */
export function applyChange(target, change, meId) {
  if (!target || target.seq !== change.target_seq || isChange(target)) return false;
  // `changed_seq`: the newest change the target's state (as read) reflects already.
  if (change.seq <= (target.changed_seq || 0)) return false;
  const applied = apply(target, change, meId);
  if (applied) target.changed_seq = change.seq;
  return applied;
}

function apply(target, change, meId) {
  if (change.kind === "edit") {
    if (target.deleted || (target.edited_ts || 0) > change.ts) return false;
    if (typeof change.text !== "string") return false;
    target.text = change.text;
    target.edited_ts = change.ts;
    return true;
  }
  if (change.kind === "delete") {
    if (target.deleted) return false;
    target.deleted = true;
    if (change.by_moderator) target.by_moderator = true;
    delete target.text;
    delete target.mentions;
    delete target.reactions;
    delete target.my_reactions;
    return true;
  }
  if (change.kind === "react") return react(target, change, meId);
  return false;
}

function react(target, change, meId) {
  if (target.deleted || typeof change.emoji !== "string") return false;
  const mine = new Set(target.my_reactions || []);
  if (change.from.id === meId) {
    // The reader's own reactions are a set: applying one twice changes nothing.
    if (mine.has(change.emoji) === Boolean(change.on)) return false;
    if (change.on) mine.add(change.emoji);
    else mine.delete(change.emoji);
    target.my_reactions = [...mine];
  }
  const reactions = { ...(target.reactions || {}) };
  const count = (reactions[change.emoji] || 0) + (change.on ? 1 : -1);
  if (count > 0) reactions[change.emoji] = count;
  else delete reactions[change.emoji];
  target.reactions = reactions;
  return true;
}

/** The change requests, each with its own cid (a retry of the same request reuses it). */
export function changeRequests(connection) {
  const call = (event, payload) => connection.call(event, { ...payload, cid: randomId() });
  return {
    edit: (message, text) => call("edit", { room: message.room, id: message.id, text }),
    remove: (message) => call("delete", { room: message.room, id: message.id }),
    react: (message, emoji, on) =>
      call("react", { room: message.room, id: message.id, emoji, on }),
  };
}
