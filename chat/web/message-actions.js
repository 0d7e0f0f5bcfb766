// What a reader can do to a message of a server that supports it (changes.js: `changeable`):
// react (the reaction chips and a small palette), and edit or delete one's own (inline, no
// browser dialog). The requests go through `ctx`; the result comes back as a change entry
// (the ack, then the live event), which re-renders the row.

import { el } from "./dom.js";

export const PALETTE = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/**
 * Add the reaction chips and the action toolbar to the row `node` of `message`.
 * @param ctx {me(): user, react(message, emoji, on), edit(message, text), remove(message),
 *             failed(error), moderates(roomId): bool (the reader deletes any message there)}
 */
export function addActions(node, message, ctx) {
  const body = node.querySelector(".msg-body");
  if (message.deleted) return;
  node.tabIndex = -1; // a tap focuses the row, which shows its actions where nothing hovers
  const chips = reactionChips(message, ctx);
  if (chips) body.append(chips);
  const mine = message.from.id === ctx.me().id;
  const removable = mine || ctx.moderates(message.room);
  const toolbar = el(
    "div",
    { class: "msg-actions", "data-testid": "message-actions" },
    button("☺+", "react-open", "Add a reaction", () => togglePalette(node, message, ctx)),
    mine ? button("Edit", "message-edit", "Edit this message", () => startEdit(node, message, ctx)) : null,
    removable
      ? button("Delete", "message-delete", "Delete this message", () => askDelete(node, message, ctx))
      : null,
  );
  body.append(toolbar);
}

function button(text, testid, label, onclick) {
  return el("button", {
    type: "button",
    class: "small",
    "data-testid": testid,
    "aria-label": label,
    title: label,
    text,
    onclick,
  });
}

function reactionChips(message, ctx) {
  const entries = Object.entries(message.reactions || {}).filter(([, count]) => count > 0);
  if (!entries.length) return null;
  const mine = new Set(message.my_reactions || []);
  return el(
    "div",
    { class: "reactions", "data-testid": "reactions" },
    ...entries.map(([emoji, count]) =>
      el("button", {
        type: "button",
        class: "reaction",
        "data-testid": "reaction",
        "data-emoji": emoji,
        "aria-pressed": mine.has(emoji) ? "true" : "false",
        "aria-label": `${emoji} ${count}${mine.has(emoji) ? ", yours" : ""}`,
        text: `${emoji} ${count}`,
        onclick: () => run(ctx, () => ctx.react(message, emoji, !mine.has(emoji))),
      }),
    ),
  );
}

async function run(ctx, action) {
  try {
    await action();
  } catch (error) {
    ctx.failed(error);
  }
}

function togglePalette(node, message, ctx) {
  const open = node.querySelector(".react-palette");
  if (open) {
    open.remove();
    return;
  }
  const mine = new Set(message.my_reactions || []);
  const palette = el(
    "div",
    { class: "react-palette", "data-testid": "react-palette", role: "group", "aria-label": "React" },
    ...PALETTE.map((emoji) =>
      el("button", {
        type: "button",
        class: "reaction-choice",
        "data-testid": "react-choice",
        "data-emoji": emoji,
        text: emoji,
        onclick: () => {
          palette.remove();
          run(ctx, () => ctx.react(message, emoji, !mine.has(emoji)));
        },
      }),
    ),
  );
  node.querySelector(".msg-body").append(palette);
  palette.querySelector("button").focus();
}

function startEdit(node, message, ctx) {
  const text = node.querySelector('[data-testid="message-text"]');
  if (!text || node.querySelector(".edit-form")) return;
  const input = el("textarea", {
    class: "edit-input",
    "data-testid": "edit-input",
    rows: 2,
    maxlength: 4000,
    "aria-label": "Edit the message",
  });
  input.value = message.text;
  const close = () => {
    form.remove();
    text.hidden = false;
  };
  const save = () => {
    const value = input.value.trim();
    if (!value || value === message.text) return close();
    run(ctx, async () => {
      await ctx.edit(message, value);
      close();
    });
  };
  const form = el(
    "form",
    { class: "edit-form", "data-testid": "edit-form", onsubmit: (event) => (event.preventDefault(), save()) },
    input,
    el(
      "div",
      { class: "row" },
      el("button", { type: "submit", class: "small primary", "data-testid": "edit-save", text: "Save" }),
      el("button", { type: "button", class: "small", text: "Cancel", onclick: close }),
      el("span", { class: "muted small-text", text: "Enter saves, Escape cancels" }),
    ),
  );
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      save();
    }
  });
  text.hidden = true;
  text.after(form);
  input.focus();
}

function askDelete(node, message, ctx) {
  if (node.querySelector(".delete-confirm")) return;
  const box = el(
    "div",
    { class: "delete-confirm row", role: "group" },
    el("span", { class: "small-text", text: "Delete this message for everyone?" }),
    el("button", {
      type: "button",
      class: "small danger",
      "data-testid": "delete-confirm",
      text: "Delete",
      onclick: () => run(ctx, () => ctx.remove(message)),
    }),
    el("button", { type: "button", class: "small", text: "Cancel", onclick: () => box.remove() }),
  );
  node.querySelector(".msg-body").append(box);
  box.querySelector("button").focus();
}
