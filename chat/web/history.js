// Fetching messages: a room's newest page, older pages when scrolling back, and catching up
// after a reconnect (`sync`, then `history` pages while `has_more`).

const PAGE = 50;
const MAX_PAGE = 100;
const REACH_BACK_PAGES = 4;
const CATCH_UP_PAGE = 100;
const SYNC_MAX_ROOMS = 500;

/** Load the newest page of `room` the first time it is shown. */
export async function loadNewest(chat, room) {
  if (room.status !== "idle" || !chat.connection.connected) return;
  room.status = "loading";
  chat.view.renderHistoryStatus();
  // Opening at the "new messages" divider: a page that reaches back to it (up to 100).
  const unread = Number.isInteger(room.dividerAt) ? room.top - room.dividerAt + 5 : 0;
  const limit = Math.min(MAX_PAGE, Math.max(PAGE, unread));
  try {
    const ack = await chat.connection.call("history", { room: room.id, limit });
    if (ack.receipts) room.receipts = { ...ack.receipts };
    room.loadedNewest(ack.messages, ack.has_more);
    await reachBack(chat, room).catch(() => {}); // short of it, scrolling up loads the rest
  } catch (error) {
    if (room.kind === "dm" && (error.code === "no_room" || error.code === "forbidden")) {
      room.loadedNewest([], false); // a DM without messages does not exist yet
    } else {
      room.status = "idle"; // tried again on the next connect or visit
      if (chat.current === room.id) chat.view.renderHistoryStatus();
      return;
    }
  }
  if (chat.current === room.id) {
    chat.view.show(room);
    chat.markRead(room);
    requestAnimationFrame(() => chat.view.checkTop());
  }
}

/**
 * Opening at the divider: older pages until the first unread message is held (a few at most;
 * beyond them the divider stands at the oldest one loaded, and moves up as the user scrolls).
 */
async function reachBack(chat, room) {
  for (let page = 0; page < REACH_BACK_PAGES; page += 1) {
    const at = room.dividerAt;
    if (!Number.isInteger(at) || !room.hasOlder || room.oldest <= at + 1) return;
    const ack = await chat.connection.call("history", {
      room: room.id,
      before: room.oldest,
      limit: MAX_PAGE,
    });
    for (const message of ack.messages) room.add(message);
    room.hasOlder = Boolean(ack.has_more) && ack.messages.length > 0;
  }
}

/** Load the page before the oldest message held (scrolled to the top). */
export async function loadOlder(chat, room) {
  if (room.olderLoading || !room.hasOlder || room.status !== "loaded") return;
  room.olderLoading = true;
  chat.view.renderHistoryStatus();
  try {
    const ack = await chat.connection.call("history", {
      room: room.id,
      before: room.oldest,
      limit: PAGE,
    });
    chat.view.keepPosition(() => {
      for (const message of ack.messages) {
        const index = room.add(message);
        if (index >= 0) chat.view.inserted(room, message, index);
      }
    });
    room.hasOlder = Boolean(ack.has_more) && ack.messages.length > 0;
  } catch {
    // Lost connection or refused: scrolling to the top again retries.
  } finally {
    room.olderLoading = false;
    if (chat.current === room.id) {
      chat.view.renderHistoryStatus();
      requestAnimationFrame(() => chat.view.checkTop());
    }
  }
}

/**
 * After a reconnect: ask for what every loaded room missed, from the last seq held without a
 * gap. Messages above the new socket's live point arrive as events meanwhile; both go
 * through the same seq-keyed insert, so nothing shows twice or out of order.
 */
export async function catchUp(chat, only = null) {
  const rooms = (only || [...chat.rooms.values()]).filter(
    (room) => room.status === "loaded" && !room.draft,
  );
  for (let i = 0; i < rooms.length; i += SYNC_MAX_ROOMS) {
    const chunk = rooms.slice(i, i + SYNC_MAX_ROOMS);
    const request = Object.fromEntries(chunk.map((room) => [room.id, room.contig]));
    let ack;
    try {
      ack = await chat.connection.call("sync", { rooms: request });
    } catch {
      return; // the next session tries again
    }
    for (const [roomId, answer] of Object.entries(ack.rooms || {})) {
      const room = chat.rooms.get(roomId);
      if (!room || answer.error) continue;
      answer.messages.forEach((message) => chat.ingest(message, { live: false }));
      if (answer.has_more && answer.messages.length) {
        await pageAfter(chat, room, answer.messages[answer.messages.length - 1].seq);
      }
    }
  }
}

async function pageAfter(chat, room, after) {
  for (;;) {
    let ack;
    try {
      ack = await chat.connection.call("history", {
        room: room.id,
        after,
        limit: CATCH_UP_PAGE,
      });
    } catch {
      return;
    }
    ack.messages.forEach((message) => chat.ingest(message, { live: false }));
    if (!ack.has_more || !ack.messages.length) return;
    after = ack.messages[ack.messages.length - 1].seq;
  }
}
