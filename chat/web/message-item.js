// One message row of the list: avatar, author, time, text; the decorations that depend on the
// message before it (a day separator, grouping with the same author) and @mentions of the
// reader. Every string goes in as text (dom.js): nothing here parses HTML.

import { dayLabel, el, initial, linkify, sameDay, timeOf, whoIs } from "./dom.js";

const AVATAR_COLOURS = 8;
const GROUP_WITHIN_MS = 5 * 60 * 1000; // same author, this close: one group, one header

export function avatarClass(userId) {
  let hash = 0;
  for (const char of userId) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return `avatar c${hash % AVATAR_COLOURS}`;
}

/** One message row: the author's avatar, then the `meta` line, the text and any `extra`. */
export function messageItem(attrs, author, meta, text, extra = null) {
  return el(
    "li",
    attrs,
    el("span", {
      class: avatarClass(author.id),
      "aria-hidden": "true",
      text: initial(author.name),
    }),
    el(
      "div",
      { class: "msg-body" },
      el("div", { class: "msg-meta" }, ...meta),
      el("div", { class: "msg-text", "data-testid": "message-text" }, text),
      extra,
    ),
  );
}

/** `@name` in a text, as a case-insensitive pattern that ends where the name ends. */
export function mentionPattern(name) {
  const escaped = (name || "").trim().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if (!escaped) return null;
  return new RegExp(`@${escaped}(?![\\p{L}\\p{N}_])`, "giu");
}

/** Does `message` mention the user `me` (explicit `mentions` from the server, or `@name`)? */
export function mentions(message, me) {
  if (message.from.id === me.id || message.kind || typeof message.text !== "string") return false;
  if (Array.isArray(message.mentions) && message.mentions.includes(me.id)) return true;
  const pattern = mentionPattern(me.name);
  return Boolean(pattern && pattern.test(message.text));
}

/** Wrap every match of `pattern` in the text nodes of `fragment` (links stay links). */
function highlight(fragment, pattern) {
  if (!pattern) return fragment;
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) texts.push(node);
  for (const node of texts) {
    const value = node.nodeValue;
    const parts = [];
    let done = 0;
    for (const match of value.matchAll(pattern)) {
      parts.push(value.slice(done, match.index));
      parts.push(el("mark", { class: "mention", "data-testid": "mention", text: match[0] }));
      done = match.index + match[0].length;
    }
    if (!parts.length) continue;
    parts.push(value.slice(done));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
  return fragment;
}

/** The text of a message: links, and the reader's @name marked. */
export function messageText(text, me) {
  return highlight(linkify(text), mentionPattern(me.name));
}

/** The row of a stored message. */
export function renderMessage(message, me, name) {
  const mine = message.from.id === me.id;
  const time = timeOf(message.ts);
  const mentioned = mentions(message, me);
  const attrs = {
    class: `msg${mine ? " mine" : ""}${mentioned ? " mentioned" : ""}`,
    "data-testid": "message",
    "data-seq": message.seq,
    "data-id": message.id,
    "data-user-id": message.from.id,
    "data-mine": mine ? "true" : "false",
    "data-mention": mentioned ? "true" : "false",
  };
  const meta = [
    el("span", {
      class: "msg-author",
      "data-testid": "message-author",
      "data-user-id": message.from.id,
      title: whoIs(name, message.from.id),
      text: name,
    }),
    mine ? el("span", { class: "you-tag", text: "you" }) : null,
    el("time", {
      class: "msg-time",
      datetime: time.iso,
      title: time.full,
      "data-testid": "message-time",
      text: time.short,
    }),
    message.edited_ts && !message.deleted
      ? el("span", {
          class: "edited",
          "data-testid": "message-edited",
          title: `Edited ${timeOf(message.edited_ts).full}`,
          text: "(edited)",
        })
      : null,
  ];
  if (message.deleted) {
    attrs.class += " deleted";
    attrs["data-deleted"] = "true";
    const node = messageItem(attrs, { id: message.from.id, name }, meta, "");
    // A tombstone: no text, ever (the server sends none either).
    node.querySelector(".msg-text").replaceWith(
      el("div", {
        class: "msg-text tombstone",
        "data-testid": "message-deleted",
        text: message.by_moderator
          ? "This message was removed by a moderator."
          : "This message was deleted.",
      }),
    );
    return node;
  }
  const text = typeof message.text === "string" ? messageText(message.text, me) : "";
  return messageItem(attrs, { id: message.from.id, name }, meta, text);
}

/** A change entry's row: in the list (so rows keep the stream's order), never shown. */
export function renderChange(message) {
  return el("li", {
    hidden: true,
    class: "change",
    "data-testid": "change",
    "data-seq": message.seq,
    "data-kind": message.kind,
  });
}

/**
 * Decorate `node` (the row of `message`) for the message before it (`previous`, or null): a
 * day separator above the first message of each day, the "new messages" divider above the
 * message of seq `dividerSeq` (the first unread one when the room was opened; null: none),
 * and `data-grouped` when it continues its author's group (same author, same day, a few
 * minutes apart, no divider between).
 */
export function decorate(node, message, previous, dividerSeq = null) {
  const newDay = !previous || !sameDay(previous.ts, message.ts);
  let separator = node.querySelector(":scope > .day-sep");
  if (newDay) {
    const label = dayLabel(message.ts);
    if (!separator) {
      separator = el("div", { class: "day-sep", "data-testid": "day-separator", role: "separator" });
      node.prepend(separator);
    }
    if (separator.textContent !== label.text) separator.textContent = label.text;
    separator.title = label.full;
  } else if (separator) {
    separator.remove();
  }
  const firstNew = message.seq === dividerSeq;
  let divider = node.querySelector(":scope > .new-sep");
  if (firstNew && !divider) {
    divider = el("div", { class: "new-sep", "data-testid": "new-divider", text: "New messages" });
    if (separator) separator.after(divider);
    else node.prepend(divider);
  } else if (!firstNew && divider) {
    divider.remove();
  }
  const grouped =
    !newDay &&
    !firstNew &&
    previous.from.id === message.from.id &&
    message.ts - previous.ts < GROUP_WITHIN_MS &&
    !previous.deleted;
  node.dataset.grouped = grouped ? "true" : "false";
  node.classList.toggle("grouped", grouped);
}
