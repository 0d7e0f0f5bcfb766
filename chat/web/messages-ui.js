// The message pane: the current room's messages in seq order, the user's pending messages,
// scrolling back through history, and the composer.

import { $, initial, el, linkify, listen, whoIs } from "./dom.js";
import { decorate, messageItem, renderMessage } from "./message-item.js";

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
    const items = room.seqs.map((seq) => this.render(room.bySeq.get(seq)));
    this.list.replaceChildren(...items);
    items.forEach((node, i) => this.nodes.set(room.seqs[i], node));
    items.forEach((node, i) => this.decorateAt(i));
    this.renderPending();
    this.renderHistoryStatus();
    this.hidePill();
    this.scrollToBottom();
  }

  render(message) {
    const name = this.ctx.nameOf(message.from.id, message.from.name);
    return renderMessage(message, this.ctx.me(), name);
  }

  /** Day separator and grouping of the row at `index` of the current room (if shown). */
  decorateAt(index) {
    const room = this.room;
    const seq = room.seqs[index];
    const node = seq === undefined ? null : this.nodes.get(seq);
    if (!node) return;
    const previous = index > 0 ? room.bySeq.get(room.seqs[index - 1]) : null;
    decorate(node, room.bySeq.get(seq), previous);
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
    this.decorateAt(index);
    this.decorateAt(index + 1);
    if (room.seqs.length === 1) this.renderHistoryStatus();
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
    if (!this.pill.hidden && this.nearBottom()) this.hidePill();
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
    const me = this.ctx.me();
    const items = this.ctx.pending(this.room.id).map((item) => {
      const label =
        item.state === "failed"
          ? `Not sent: ${item.error}`
          : item.error
            ? `Retrying… (${item.error})`
            : this.ctx.connected()
              ? "Sending…"
              : "Waiting for the connection…";
      const attrs = {
        class: `msg mine pending ${item.state}`,
        "data-testid": "pending-message",
        "data-cid": item.cid,
        "data-state": item.state,
      };
      const meta = [
        el("span", { class: "msg-author", text: me.name }),
        el("span", { class: "msg-state", "data-testid": "pending-state", text: label }),
      ];
      const actions =
        item.state === "failed"
          ? el(
              "div",
              { class: "row" },
              el("button", {
                type: "button",
                class: "small",
                text: "Retry",
                onclick: () => this.ctx.retry(item.cid),
              }),
              el("button", {
                type: "button",
                class: "small",
                text: "Discard",
                onclick: () => this.ctx.discard(item.cid),
              }),
            )
          : null;
      return messageItem(attrs, me, meta, linkify(item.text), actions);
    });
    const stick = this.nearBottom();
    this.pendingList.replaceChildren(...items);
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
