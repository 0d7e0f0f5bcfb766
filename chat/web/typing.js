// "X is typing…": notices sent at most every 2 s while the user types, shown for 3 s after
// each notice received.

import { $ } from "./dom.js";

const SEND_EVERY_MS = 2000;
const SHOW_FOR_MS = 3000;

export class Typing {
  constructor(chat) {
    this.chat = chat;
    this.lastSent = new Map(); // room id -> ms
    this.typists = new Map(); // room id -> Map(user id -> {name, timer})
    this.trailing = null; // a notice due when the 2 s are over (the user kept typing)
  }

  /** The user typed in `room`: tell the others, at most every 2 s. */
  typed(room) {
    if (!room || room.draft || !this.chat.connection.connected) return;
    const wait = SEND_EVERY_MS - (Date.now() - (this.lastSent.get(room.id) || 0));
    if (wait > 0) {
      if (!this.trailing) {
        this.trailing = setTimeout(() => {
          this.trailing = null;
          const input = $("composer-input");
          if (this.chat.current === room.id && input.value.trim()) this.typed(room);
        }, wait + 50);
      }
      return;
    }
    this.lastSent.set(room.id, Date.now());
    this.chat.connection.emit("typing", { room: room.id });
  }

  received({ room, user }) {
    if (!user || user.id === this.chat.me.id) return;
    let typists = this.typists.get(room);
    if (!typists) {
      typists = new Map();
      this.typists.set(room, typists);
    }
    const previous = typists.get(user.id);
    if (previous) clearTimeout(previous.timer);
    const timer = setTimeout(() => this.stopped(room, user.id), SHOW_FOR_MS);
    typists.set(user.id, { name: this.chat.nameOf(user.id, user.name), timer });
    if (room === this.chat.current) this.render();
  }

  stopped(room, userId) {
    const typists = this.typists.get(room);
    const entry = typists && typists.get(userId);
    if (!entry) return;
    clearTimeout(entry.timer);
    typists.delete(userId);
    if (room === this.chat.current) this.render();
  }

  renamed(userId, name) {
    for (const typists of this.typists.values()) {
      const entry = typists.get(userId);
      if (entry) entry.name = name;
    }
    this.render();
  }

  render() {
    const typists = this.typists.get(this.chat.current);
    const names = typists ? [...typists.values()].map((entry) => entry.name) : [];
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    $("typing").textContent = text;
  }

  clear() {
    clearTimeout(this.trailing);
    for (const typists of this.typists.values()) {
      for (const entry of typists.values()) clearTimeout(entry.timer);
    }
    this.typists.clear();
    $("typing").textContent = "";
  }
}
