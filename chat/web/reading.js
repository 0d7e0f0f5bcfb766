// Read positions kept by the server (issue 16), when it keeps them: room objects then carry
// `read_seq`, `unread` and `mentions`, the same on every device. The page tells the server what
// the user has seen (`read {room, seq}`: the newest message of the shown room, once it is on
// screen in a visible tab), follows the user's other devices (`read` events), and shows "Seen"
// in DMs from the other user's position (`receipt` events, `history`'s `receipts`).
// Without those fields nothing here does anything: the page counts unread messages itself.

import { $, show } from "./dom.js";

/** Take the server's read fields of a room object (session, join, joined, read ack). */
export function readFields(room, info) {
  if (!info) return;
  if (Number.isInteger(info.read_seq)) {
    room.serverRead = true;
    room.readSeq = Math.max(room.readSeq || 0, info.read_seq);
  }
  if (Number.isInteger(info.unread)) {
    room.unread = info.unread;
    // Counted up to there: a reconnect's sync brings those messages again, not new ones.
    if (Number.isInteger(info.last_seq)) room.countedTo = Math.max(room.countedTo || 0, info.last_seq);
  }
  if (Number.isInteger(info.mentions)) room.mentions = info.mentions;
}

export class Reading {
  constructor(chat) {
    this.chat = chat;
    this.sending = new Map(); // room id -> seq of the `read` in flight
    this.receipts = true; // the user's setting (the server's default)
    this.supported = false; // the server keeps read positions (its rooms have `read_seq`)
    const toggle = $("receipts-toggle");
    toggle.addEventListener("change", () => this.setReceipts(toggle.checked), {
      signal: chat.abort.signal,
    });
  }

  /** The user has seen everything up to the room's newest message: tell the server. */
  seen(room) {
    if (!room.serverRead || !this.chat.connection.connected) return;
    const seq = room.top;
    if (seq <= (room.readSeq || 0) || (this.sending.get(room.id) || 0) >= seq) return;
    this.sending.set(room.id, seq);
    this.chat.connection
      .call("read", { room: room.id, seq })
      .then((ack) => this.update(room, ack.room))
      .catch(() => {
        /* not moved: the next look at the room tries again */
      })
      .finally(() => {
        if (this.sending.get(room.id) === seq) this.sending.delete(room.id);
      });
  }

  /** `read {room, seq, unread, mentions}`: the position moved (on this device or another). */
  moved(notice) {
    const room = this.chat.rooms.get(notice.room);
    if (!room) return;
    this.update(room, { read_seq: notice.seq, unread: notice.unread, mentions: notice.mentions });
  }

  update(room, info) {
    const current = room.id === this.chat.current;
    readFields(room, info);
    if (current) {
      room.unread = 0; // on screen: the badge of the shown room stays off
      room.mentions = 0;
    }
    this.chat.sidebar.render();
    this.chat.updateTitle();
  }

  /** `receipt {room, user, seq}`: another member read up to `seq`. */
  receipt({ room: roomId, user, seq }) {
    const room = this.chat.rooms.get(roomId);
    if (!room || !Number.isInteger(seq)) return;
    room.receipts = { ...(room.receipts || {}), [user]: Math.max(room.receipts?.[user] || 0, seq) };
    if (roomId === this.chat.current) this.chat.view.renderSeen();
  }

  // --- the receipts setting ---------------------------------------------------------------------

  /** `session.settings` / the `settings` event; absent: the server has no such setting. */
  settings(settings) {
    const known = Boolean(settings) && typeof settings.receipts === "boolean";
    show($("receipts-setting"), known);
    if (!known) return;
    this.receipts = settings.receipts;
    $("receipts-toggle").checked = settings.receipts;
    if (!settings.receipts) {
      for (const room of this.chat.rooms.values()) room.receipts = {};
      this.chat.view.renderSeen();
    }
  }

  async setReceipts(on) {
    try {
      const ack = await this.chat.connection.call("settings", { receipts: on });
      this.settings(ack.settings);
    } catch (error) {
      $("receipts-toggle").checked = this.receipts;
      $("send-error").textContent = error.message;
    }
  }
}
