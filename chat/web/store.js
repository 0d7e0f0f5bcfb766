// Client-side state of the rooms: messages keyed by seq (never twice, always in order),
// what has been loaded, and unread counts.

export const LOBBY = "lobby";

export function kindOf(id, isPrivate) {
  if (id === LOBBY) return "lobby";
  if (id.startsWith("dm:")) return "dm";
  return isPrivate ? "private" : "public";
}

/** The DM room of two users, as the server names it: dm:<a>:<b> with the ids sorted. */
export function dmRoomId(a, b) {
  const [first, second] = [a, b].sort();
  return `dm:${first}:${second}`;
}

export class Room {
  constructor({ id, name, private: isPrivate, last_seq: lastSeq, ...info }) {
    this.id = id;
    this.kind = kindOf(id, isPrivate);
    this.name = name || id;
    this.private = Boolean(isPrivate);
    this.role = "member"; // the user's role here (issue 17: owner, admin, member)
    this.managed = false; // only owners and admins invite
    this.memberLimit = null;
    this.removedByModerator = new Set(); // seqs of messages a moderator deleted
    this.setInfo(info);
    this.seqs = []; // ascending
    this.bySeq = new Map();
    // "idle": nothing loaded (live messages are only counted); "loading": the newest page is
    // on its way (live messages are kept); "loaded": seqs hold a gap-free range up to contig.
    this.status = "idle";
    this.contig = 0; // every message from the oldest loaded one up to here is present
    this.top = lastSeq || 0; // the highest seq known to exist
    this.hasOlder = false;
    this.olderLoading = false;
    this.unread = 0;
    this.mentions = 0; // unread messages that mention the user
  }

  /** The fields of issue 17's room objects (`role`, `managed`, `member_limit`), if given. */
  setInfo(info) {
    if (typeof info.role === "string") this.role = info.role;
    if (typeof info.managed === "boolean") this.managed = info.managed;
    if ("member_limit" in info || typeof info.managed === "boolean") {
      this.memberLimit = Number.isInteger(info.member_limit) ? info.member_limit : null;
    }
  }

  get keeps() {
    return this.status !== "idle";
  }

  get oldest() {
    return this.seqs.length ? this.seqs[0] : null;
  }

  /** The peer's user id of a DM room. */
  peer(meId) {
    const [, first, second] = this.id.split(":");
    return first === meId ? second : first;
  }

  /** Insert a message; return its index among the room's messages, or -1 if known already. */
  add(message) {
    const seq = message.seq;
    if (this.bySeq.has(seq)) return -1;
    let low = 0;
    let high = this.seqs.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.seqs[mid] < seq) low = mid + 1;
      else high = mid;
    }
    this.seqs.splice(low, 0, seq);
    this.bySeq.set(seq, message);
    this.byModerator(message);
    if (seq > this.top) this.top = seq;
    this.advance();
    return low;
  }

  /**
   * Read paths say only `deleted`: that a moderator deleted it is known from the delete entry
   * (`by_moderator`), which may arrive before or after its target (pages, live events).
   */
  byModerator(message) {
    if (message.kind === "delete" && message.by_moderator) {
      this.removedByModerator.add(message.target_seq);
      const target = this.bySeq.get(message.target_seq);
      if (target && target.deleted) target.by_moderator = true;
    } else if (!message.kind && message.deleted && this.removedByModerator.has(message.seq)) {
      message.by_moderator = true;
    }
  }

  advance() {
    if (this.status !== "loaded") return;
    while (this.bySeq.has(this.contig + 1)) this.contig += 1;
  }

  /**
   * The newest page arrived: it is gap-free up to its last seq. Messages kept below it from
   * before (they cannot be trusted to be gap-free with it) are dropped; scrolling back fetches
   * them again in order.
   */
  loadedNewest(messages, hasMore) {
    const low = messages.length ? messages[0].seq : null;
    if (low !== null) {
      for (const seq of this.seqs.filter((s) => s < low)) this.bySeq.delete(seq);
      this.seqs = this.seqs.filter((s) => s >= low);
    }
    for (const message of messages) this.add(message);
    this.status = "loaded";
    this.contig = messages.length ? messages[messages.length - 1].seq : 0;
    if (!messages.length && this.seqs.length) this.contig = this.seqs[0] - 1;
    this.hasOlder = Boolean(hasMore) && low !== null && low > 1;
    this.advance();
  }

  forget() {
    this.seqs = [];
    this.bySeq.clear();
    this.status = "idle";
    this.contig = 0;
    this.hasOlder = false;
  }
}

// --- read markers, kept per user in localStorage (no secrets: room ids and seqs) -------------

export class ReadMarks {
  constructor(userId) {
    this.key = `chat:read:${userId}`;
    try {
      this.marks = JSON.parse(localStorage.getItem(this.key) || "{}") || {};
    } catch {
      this.marks = {};
    }
  }

  get(roomId) {
    const value = this.marks[roomId];
    return Number.isInteger(value) ? value : null;
  }

  set(roomId, seq) {
    if ((this.get(roomId) ?? -1) >= seq) return;
    this.marks[roomId] = seq;
    try {
      localStorage.setItem(this.key, JSON.stringify(this.marks));
    } catch {
      /* storage full or disabled: unread counts just restart next time */
    }
  }
}

export function rememberRoom(userId, roomId) {
  try {
    localStorage.setItem(`chat:room:${userId}`, roomId);
  } catch {
    /* ignore */
  }
}

export function rememberedRoom(userId) {
  try {
    return localStorage.getItem(`chat:room:${userId}`);
  } catch {
    return null;
  }
}
