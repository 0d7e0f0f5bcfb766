// The message pane: the current room's messages in seq order, the user's pending messages,
// scrolling back through history, and the composer.

import { isChange, changeable } from "./changes.js";
import { $, el, initial, listen, whoIs } from "./dom.js";
import { addActions } from "./message-actions.js";
import { decorate, renderChange, renderMessage } from "./message-item.js";
import { pendingItems } from "./pending-ui.js";
import { isModeration, moderates, moderationText, renderNotice } from "./roles.js";

export { avatarClass } from "./message-item.js";

const NEAR_TOP_PX = 80;
const NEAR_BOTTOM_PX = 120;

export class MessageView {
  /**
   * @param ctx {me(): user, nameOf(id, fallback): string, pending(roomId): items,
   *             nearTop(): void, send(text): void, typed(): void, retry(cid), discard(cid)}
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.scroller = $("scroller");
    this.list = $("message-list");
    this.pendingList = $("pending-list");
    this.historyStatus = $("history-status");
    this.input = $("composer-input");
    this.room = null;
    this.nodes = new Map(); // seq -> <li> of the current room
    this.pill = $("new-below");
    listen(this.ctx.signal, this.scroller, "scroll", () => this.scrolled(), { passive: true });
    listen(this.ctx.signal, this.pill, "click", () => {
      this.scrollToBottom();
      this.hidePill();
      this.input.focus({ preventScroll: true });
    });
    listen(this.ctx.signal, $("composer"), "submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    listen(this.ctx.signal, this.input, "keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    listen(this.ctx.signal, this.input, "input", () => {
      if (this.room) this.ctx.drafts.set(this.room.id, this.input.value);
      if (this.input.value.trim()) this.ctx.typed();
    });
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || !this.room) return;
    this.input.value = "";
    this.ctx.drafts.set(this.room.id, "");
    this.ctx.send(text);
    this.scrollToBottom(); // what one writes is read at the bottom, wherever one was
    this.hidePill();
    this.input.focus();
  }

  // --- rendering ------------------------------------------------------------------------------

  show(room) {
    if (this.room !== room) this.input.value = this.ctx.drafts.get(room.id);
    this.room = room;
    this.nodes.clear();
    this.dividerSeq = null;
    for (const seq of room.seqs) {
      if (this.dividerSeq === null && this.unreadAt(room.bySeq.get(seq))) this.dividerSeq = seq;
    }
    const items = room.seqs.map((seq) => this.render(room.bySeq.get(seq)));
    this.list.replaceChildren(...items);
    items.forEach((node, i) => this.nodes.set(room.seqs[i], node));
    items.forEach((node, i) => this.decorateAt(i));
    this.renderPending();
    this.renderHistoryStatus();
    this.renderSeen();
    this.hidePill();
    const divider = this.list.querySelector(".new-sep");
    if (divider) {
      const above = divider.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top;
      this.scroller.scrollTop += above - 8; // the divider at the top, the unread below it
    } else {
      this.scrollToBottom();
    }
  }

  render(message) {
    if (isModeration(message)) return this.renderNotice(message);
    if (isChange(message)) return renderChange(message);
    const name = this.ctx.nameOf(message.from.id, message.from.name);
    const node = renderMessage(message, this.ctx.me(), name);
    if (changeable(message)) addActions(node, message, this.ctx.actions);
    return node;
  }

  /** A moderation entry: one line of system text (a ban offers "Unban" to moderators). */
  renderNotice(entry) {
    const text = moderationText(entry, this.ctx.nameOf, this.ctx.me().id);
    const room = this.room && this.room.id === entry.room ? this.room : null;
    const unban =
      entry.action === "ban" && room && moderates(room.role)
        ? el("button", {
            type: "button",
            class: "small",
            "data-testid": "notice-unban",
            text: "Unban",
            onclick: () =>
              this.ctx.actions.moderate("unban", entry.room, entry.user.id).catch((error) => {
                $("send-error").textContent = error.message;
              }),
          })
        : null;
    return renderNotice(entry, text, unban);
  }

  /** The row of `seq` again (its message changed: edited, deleted, reacted to). */
  refresh(room, seq) {
    const old = room === this.room ? this.nodes.get(seq) : null;
    if (!old) return;
    const node = this.render(room.bySeq.get(seq));
    old.replaceWith(node);
    this.nodes.set(seq, node);
    const index = room.seqs.indexOf(seq);
    this.decorateAt(index);
    this.decorateAt(this.nextShown(index));
    this.renderSeen();
  }

  /** The index of the first message (not a change entry) after `index`, or -1. */
  nextShown(index) {
    const room = this.room;
    for (let i = index + 1; i < room.seqs.length; i += 1) {
      if (!isChange(room.bySeq.get(room.seqs[i]))) return i;
    }
    return -1;
  }

  /** Day separator, grouping and the "new messages" divider of the row at `index`. */
  decorateAt(index) {
    const room = this.room;
    const seq = room.seqs[index];
    const node = seq === undefined ? null : this.nodes.get(seq);
    const message = node ? room.bySeq.get(seq) : null;
    if (!message || isChange(message)) return;
    let previous = null;
    for (let i = index - 1; i >= 0 && !previous; i -= 1) {
      const candidate = room.bySeq.get(room.seqs[i]);
      if (!isChange(candidate)) previous = candidate;
    }
    decorate(node, message, previous, this.dividerSeq);
  }

  /** Whether `message` is one the divider may stand above: from someone else, unread when
   * the room was opened. */
  unreadAt(message) {
    const at = this.room.dividerAt;
    if (!Number.isInteger(at) || isChange(message) || message.seq <= at) return false;
    return message.from.id !== this.ctx.me().id;
  }

  /** An older page brought an earlier unread message: the divider moves up to it. */
  moveDivider(message) {
    if (!this.unreadAt(message) || (this.dividerSeq !== null && this.dividerSeq < message.seq)) {
      return;
    }
    const old = this.dividerSeq;
    this.dividerSeq = message.seq;
    if (old !== null) this.decorateAt(this.room.seqs.indexOf(old));
  }

  /** "Seen" under the user's newest message the other member of a DM has read. */
  renderSeen() {
    for (const old of this.list.querySelectorAll(".seen")) old.remove();
    const room = this.room;
    if (!room || room.kind !== "dm" || !room.receipts) return;
    const me = this.ctx.me().id;
    const upto = room.receipts[room.peer(me)];
    if (!upto) return;
    for (let i = room.seqs.length - 1; i >= 0; i -= 1) {
      const message = room.bySeq.get(room.seqs[i]);
      if (message.seq > upto || isChange(message) || message.from.id !== me) continue;
      const node = this.nodes.get(message.seq);
      if (node) {
        const at = `Seen (read up to message ${upto})`;
        node.querySelector(".msg-body").append(
          el("div", { class: "seen", "data-testid": "seen-marker", title: at, text: "Seen" }),
        );
      }
      return;
    }
  }

  /** A message was added to `room` at `index` (see Room.add). */
  inserted(room, message, index) {
    if (room !== this.room) return;
    const atEnd = index === room.seqs.length - 1;
    const stick = atEnd && this.nearBottom();
    const node = this.render(message);
    const nextSeq = room.seqs[index + 1];
    const next = nextSeq === undefined ? null : this.nodes.get(nextSeq) || null;
    this.list.insertBefore(node, next);
    this.nodes.set(message.seq, node);
    if (index < room.seqs.length - 1) this.moveDivider(message); // not for live ones
    this.decorateAt(index);
    this.decorateAt(this.nextShown(index));
    if (room.seqs.length === 1) this.renderHistoryStatus();
    if (isModeration(message) && stick) this.scrollToBottom();
    if (isChange(message)) return;
    if (message.from.id === this.ctx.me().id && room.kind === "dm") this.renderSeen();
    if (stick) this.scrollToBottom();
    else if (atEnd && message.from.id !== this.ctx.me().id) this.showPill();
  }

  // --- "new messages below" -------------------------------------------------------------------

  showPill() {
    this.pill.hidden = false;
  }

  hidePill() {
    this.pill.hidden = true;
  }

  scrolled() {
    if (this.nearBottom()) {
      this.hidePill();
      this.ctx.atBottom(); // the newest message is on screen: read
    }
    this.checkTop();
  }

  /** Insert older messages without moving what the user is looking at. */
  keepPosition(insert) {
    const before = this.scroller.scrollHeight;
    const top = this.scroller.scrollTop;
    insert();
    this.scroller.scrollTop = top + (this.scroller.scrollHeight - before);
  }

  renderPending() {
    if (!this.room) return;
    const stick = this.nearBottom();
    this.pendingList.replaceChildren(...pendingItems(this.ctx, this.room.id));
    if (stick) this.scrollToBottom();
  }

  renderHistoryStatus() {
    const room = this.room;
    if (!room) return;
    let text = "";
    let state = "idle";
    if (room.status !== "loaded") {
      text = "Loading messages…";
      state = "loading";
    } else if (room.olderLoading) {
      text = "Loading earlier messages…";
      state = "loading";
    } else if (room.hasOlder) {
      text = "Scroll up for earlier messages";
      state = "more";
    } else {
      text = room.seqs.length ? "This is the beginning of the conversation." : "No messages yet.";
      state = "start";
    }
    this.historyStatus.textContent = text;
    this.historyStatus.dataset.state = state;
  }

  renameUser(userId, name) {
    for (const item of this.list.children) {
      if (item.dataset.userId !== userId) continue;
      const author = item.querySelector(".msg-author");
      author.textContent = name;
      author.title = whoIs(name, userId);
      item.querySelector(".avatar").textContent = initial(name);
    }
  }

  // --- scrolling ------------------------------------------------------------------------------

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Ask for older messages when the top is in sight (also when the page does not scroll). */
  checkTop() {
    const room = this.room;
    if (!room || room.status !== "loaded" || !room.hasOlder || room.olderLoading) return;
    if (this.scroller.scrollTop <= NEAR_TOP_PX) this.ctx.nearTop();
  }
}
