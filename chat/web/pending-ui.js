// The rows of the user's messages that the server has not acknowledged yet (outbox.js), under
// the room's messages: "Sending…", "Waiting for the connection…", or failed with Retry/Discard.

import { el, linkify } from "./dom.js";
import { messageItem } from "./message-item.js";

/** @param ctx {me(), connected(), pending(roomId), retry(cid), discard(cid)} */
export function pendingItems(ctx, roomId) {
  const me = ctx.me();
  return ctx.pending(roomId).map((item) => {
    const label =
      item.state === "failed"
        ? `Not sent: ${item.error}`
        : item.error
          ? `Retrying… (${item.error})`
          : ctx.connected()
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
              onclick: () => ctx.retry(item.cid),
            }),
            el("button", {
              type: "button",
              class: "small",
              text: "Discard",
              onclick: () => ctx.discard(item.cid),
            }),
          )
        : null;
    return messageItem(attrs, me, meta, linkify(item.text), actions);
  });
}
