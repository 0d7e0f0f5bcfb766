// What the user was writing in each room, kept in localStorage across reloads (per user, per
// room). Cleared when sent, and all of them when the user signs out on purpose: a draft is
// private and the next person at this browser must not find it.

const PREFIX = "chat:draft:";

export class Drafts {
  constructor(userId) {
    this.key = `${PREFIX}${userId}`;
    try {
      this.drafts = JSON.parse(localStorage.getItem(this.key) || "{}") || {};
    } catch {
      this.drafts = {};
    }
  }

  get(roomId) {
    const value = this.drafts[roomId];
    return typeof value === "string" ? value : "";
  }

  set(roomId, text) {
    if (this.get(roomId) === text) return;
    if (text.trim()) this.drafts[roomId] = text;
    else delete this.drafts[roomId];
    this.save();
  }

  clear() {
    this.drafts = {};
    try {
      localStorage.removeItem(this.key);
    } catch {
      /* ignore */
    }
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.drafts));
    } catch {
      /* storage full or disabled: the draft lives as long as the page */
    }
  }
}
