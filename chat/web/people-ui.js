// Finding people by display name (the `users` event: a prefix, paged), for inviting them and
// for starting a DM; the users the reader blocked; deleting one's own account.

import * as api from "./api.js";
import { $, el, listen, show, whoIs } from "./dom.js";
import * as rooms from "./membership.js";
import { avatarClass } from "./message-item.js";
import { MemberMenu } from "./moderation-ui.js";

const DEBOUNCE_MS = 250;
const SEARCH_PAGE = 20;

/**
 * A search box with its result list: type a name's beginning, pick a user.
 * @param ctx {signal, call(event, payload), me()}
 * @param parts {input, list, more, empty} elements; `pick(user)` when one is chosen
 */
export class UserSearch {
  constructor(ctx, parts, pick, actionLabel) {
    this.ctx = ctx;
    this.parts = parts;
    this.pick = pick;
    this.actionLabel = actionLabel;
    this.timer = null;
    this.generation = 0;
    this.prefix = "";
    this.offset = 0;
    listen(ctx.signal, parts.input, "input", () => this.typed());
    listen(ctx.signal, parts.more, "click", () => this.page(this.generation, this.offset));
  }

  reset() {
    clearTimeout(this.timer);
    this.generation += 1;
    this.parts.input.value = "";
    this.parts.list.replaceChildren();
    show(this.parts.more, false);
    show(this.parts.empty, false);
  }

  typed() {
    clearTimeout(this.timer);
    const generation = ++this.generation;
    this.timer = setTimeout(() => {
      this.prefix = this.parts.input.value.trim();
      this.parts.list.replaceChildren();
      show(this.parts.more, false);
      show(this.parts.empty, false);
      if (this.prefix) this.page(generation, 0);
    }, DEBOUNCE_MS); // one request once the typing pauses, not one a key
  }

  async page(generation, offset) {
    let ack;
    try {
      ack = await this.ctx.call("users", { prefix: this.prefix, offset, limit: SEARCH_PAGE });
    } catch (error) {
      if (generation !== this.generation) return;
      this.parts.list.replaceChildren(el("li", { class: "error", text: error.message }));
      return;
    }
    if (generation !== this.generation) return; // typed on meanwhile
    const me = this.ctx.me().id;
    const users = ack.users.filter((user) => user.id !== me);
    this.parts.list.append(...users.map((user) => this.item(user)));
    this.offset = offset + ack.users.length;
    show(this.parts.more, Boolean(ack.has_more));
    show(this.parts.empty, offset === 0 && users.length === 0);
  }

  item(user) {
    return el(
      "li",
      { class: "user-result", "data-testid": "user-result", "data-user-id": user.id },
      el("span", { class: `${avatarClass(user.id)} small`, "aria-hidden": "true" }),
      el("span", { class: "member-name", title: whoIs(user.name, user.id), text: user.name }),
      el("button", {
        type: "button",
        class: "small",
        "data-testid": "user-pick",
        "aria-label": `${this.actionLabel} ${user.name}`,
        text: this.actionLabel,
        onclick: () => this.pick(user),
      }),
    );
  }
}

/** The parts of a search whose elements are named `<prefix>-search`, `-results`, … */
export function searchParts(prefix) {
  return {
    input: $(`${prefix}-search`),
    list: $(`${prefix}-results`),
    more: $(`${prefix}-more`),
    empty: $(`${prefix}-empty`),
  };
}

/** The "new DM" dialog: find someone, open the DM with them. */
export function bindNewDm(ctx) {
  const dialog = $("dm-dialog");
  const search = new UserSearch(ctx, searchParts("dmfind"), (user) => {
    dialog.close();
    ctx.startDm(user.id, user.name);
  }, "Message");
  listen(ctx.signal, $("dm-open"), "click", () => {
    search.reset();
    dialog.showModal();
    search.parts.input.focus();
  });
  listen(ctx.signal, $("dm-close"), "click", () => dialog.close());
}

/** The users the reader blocked (`blocks`, `block`, `unblock`); `changed()` after each. */
export class Blocks {
  constructor(call, changed) {
    this.call = call;
    this.changed = changed;
    this.ids = new Set();
  }

  has(userId) {
    return this.ids.has(userId);
  }

  async load() {
    try {
      const ack = await this.call("blocks", {});
      this.ids = new Set(ack.users.map((user) => user.id));
      this.changed();
    } catch {
      /* the next session asks again */
    }
  }

  async set(userId, blocked) {
    await this.call(blocked ? "block" : "unblock", { user: userId });
    if (blocked) this.ids.add(userId);
    else this.ids.delete(userId);
    this.changed();
  }
}

/** "Delete my account": the password again, DELETE /api/me, then signed out. */
export function bindDeleteAccount(ctx) {
  const dialog = $("delete-dialog");
  const form = $("delete-form");
  listen(ctx.signal, $("delete-open"), "click", () => {
    form.reset();
    $("delete-error").textContent = "";
    dialog.showModal();
  });
  listen(ctx.signal, $("delete-cancel"), "click", () => dialog.close());
  listen(ctx.signal, form, "submit", async (event) => {
    event.preventDefault();
    const password = $("delete-password").value;
    if (!password) return;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    ctx.deleting(true); // the server ends this page's socket: that is no lost connection
    try {
      await api.deleteMe(password);
    } catch (error) {
      ctx.deleting(false);
      $("delete-error").textContent =
        error.code === "invalid_credentials" ? "Wrong password." : error.message;
      return;
    } finally {
      button.disabled = false;
      $("delete-password").value = "";
    }
    dialog.close();
    ctx.deleted();
  });
}

/** The member menu, the "new DM" dialog and account deletion of `chat`; returns the menu. */
export function bindPeople(chat, signal, moderate) {
  const people = {
    signal,
    me: () => chat.me,
    call: (event, payload) => chat.connection.call(event, payload),
    nameOf: (id, fallback) => chat.nameOf(id, fallback),
    startDm: (id, name) => rooms.startDm(chat, id, name),
    blocks: chat.blocks,
    moderate,
    deleting: (on) => (chat.loggingOut = on),
    deleted: () => chat.signOut("Your account was deleted."),
  };
  bindNewDm(people);
  bindDeleteAccount(people);
  return new MemberMenu(people);
}
