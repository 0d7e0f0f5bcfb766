// Messages the user sent that the server has not acknowledged yet.
//
// Each message gets its cid once, when the user sends it; every retry (after a reconnect, a
// timeout, an `unavailable` or `rate_limited` answer) sends the very same cid, so the server
// stores it once whatever happened to earlier attempts. One message is in flight at a time,
// which keeps the user's own messages in the order they were written.

import { randomId } from "./dom.js";
import { retriable } from "./connection.js";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 8000;

export class Outbox {
  /**
   * @param connection a Connection
   * @param hooks {delivered(item, message), changed()}
   */
  constructor(connection, hooks) {
    this.connection = connection;
    this.hooks = hooks;
    this.items = [];
    this.busy = false;
    this.timer = null;
    this.delay = FIRST_RETRY_MS;
  }

  /** Queue a message for `room` (a DM to `to` when given: the server makes the DM room). */
  add(room, text, to = null) {
    const item = { cid: randomId(), room, to, text, state: "queued", error: null, at: Date.now() };
    this.items.push(item);
    this.hooks.changed();
    this.pump();
    return item;
  }

  forRoom(room) {
    return this.items.filter((item) => item.room === room);
  }

  /** The message with this cid reached the server (its ack or its live event arrived). */
  settle(cid) {
    const index = this.items.findIndex((item) => item.cid === cid);
    if (index < 0) return null;
    const [item] = this.items.splice(index, 1);
    this.hooks.changed();
    return item;
  }

  retry(cid) {
    const item = this.items.find((entry) => entry.cid === cid);
    if (item && item.state === "failed") {
      item.state = "queued";
      item.error = null;
      this.hooks.changed();
      this.pump();
    }
  }

  discard(cid) {
    const item = this.items.find((entry) => entry.cid === cid);
    if (item && item.state === "failed") this.settle(cid);
  }

  clear() {
    clearTimeout(this.timer);
    this.items = [];
  }

  pump() {
    if (this.busy || !this.connection.connected) return;
    const item = this.items.find((entry) => entry.state === "queued");
    if (!item) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.busy = true;
    item.state = "sending";
    const [event, payload] = item.to
      ? ["dm", { to: item.to, text: item.text, cid: item.cid }]
      : ["send", { room: item.room, text: item.text, cid: item.cid }];
    this.connection.call(event, payload).then(
      (ack) => {
        this.busy = false;
        this.delay = FIRST_RETRY_MS;
        if (this.settle(item.cid)) this.hooks.delivered(item, ack.message);
        this.pump();
      },
      (error) => {
        this.busy = false;
        if (!this.items.includes(item)) {
          this.pump(); // settled meanwhile by its live event
          return;
        }
        if (retriable(error)) {
          item.state = "queued";
          item.error = error.code === "disconnected" ? null : error.message;
          // A lost connection retries on reconnect (the app calls pump); otherwise back off.
          if (error.code !== "disconnected") this.later();
        } else {
          item.state = "failed";
          item.error = refusal(error, item);
          this.pump();
        }
        this.hooks.changed();
      },
    );
  }

  later() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.pump(), this.delay);
    this.delay = Math.min(this.delay * 2, MAX_RETRY_MS);
  }
}

/** What a refused message says: the server's code, in words the writer can act on. */
function refusal(error, item) {
  const dm = item.to || item.room.startsWith("dm:");
  if (error.code === "forbidden" && dm) {
    return "this person cannot receive your messages (not allowed).";
  }
  if (error.code === "muted") return "you are muted in this room for now.";
  return error.message || error.code;
}
