// The members panel of the current room: who is in it, who is online (watched live through
// `watch` / `presence`), and the actions on a member: start a DM, invite to a private room.

import { $, el, initial, listen, show, whoIs } from "./dom.js";
import { bindInvites, openInvite } from "./invite-ui.js";
import { avatarClass } from "./message-item.js";
import { ROLE_LABELS, mayInvite } from "./roles.js";

const PAGE = 100; // members per page
const WATCH_CHUNK = 100; // ids per watch call (server limit)
const WATCH_CAP = 1000; // watched users per socket (server limit)
// Joins, invitations, leaves and new accounts (the lobby) arrive live (`joined` / `left`).

export class MembersPanel {
  /**
   * @param ctx {me(), connected(), call(event, payload), nameOf(id, fallback),
   *             learnName(id, name), startDm(id, name), privateRooms(), invite(roomId, userId),
   *             peerOf(room): {id, name, online}|Promise, menu(room, member): the member menu}
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.list = $("member-list");
    this.items = new Map(); // user id -> <li>
    this.online = new Map(); // user id -> bool, for everyone ever seen
    this.watched = new Set();
    this.roles = new Map(); // user id -> role in the room shown
    this.room = null;
    this.offset = 0;
    this.count = 0;
    this.generation = 0;
    listen(this.ctx.signal, $("members-more"), "click", () => this.more());
    bindInvites(this.ctx, () => this.room);
    this.search = $("member-search");
    listen(this.ctx.signal, this.search, "input", () => this.filter());
  }

  /** Show the members of `room` (again after a reconnect: the socket's watches are new). */
  async load(room, { reconnected = false } = {}) {
    const generation = ++this.generation;
    if (this.room !== room || reconnected) {
      if (!reconnected) this.unwatchAll();
      else this.watched.clear();
      this.room = room;
      this.offset = 0;
      this.items.clear();
      this.roles.clear();
      this.list.replaceChildren(el("li", { class: "muted", text: "Loading…" }));
      $("members-count").textContent = "";
      if (!reconnected) this.search.value = "";
    }
    show($("invite-form"), mayInvite(room));
    $("invite-status").textContent = "";
    if (!this.ctx.connected()) return;
    await this.page(room, generation, 0);
  }

  setCount(count) {
    this.count = count;
    $("members-count").textContent = `(${count})`;
  }

  /** Someone wrote in `roomId` just now: a member, and online. */
  active(roomId, user) {
    if (!this.room || this.room.id !== roomId || this.items.has(user.id)) return;
    this.setCount(Math.max(this.count + 1, this.items.size + 1));
    this.add({ id: user.id, name: user.name, online: true });
    this.watch([user.id]);
  }

  async more() {
    if (this.room) await this.page(this.room, this.generation, this.offset);
  }

  async page(room, generation, offset) {
    let ack;
    try {
      ack = await this.ctx.call("members", { room: room.id, offset, limit: PAGE });
    } catch (error) {
      if (generation !== this.generation) return;
      if (room.kind === "dm") {
        // A DM that has no message yet does not exist on the server: show both people.
        ack = await this.dmDraftMembers(room);
      } else {
        this.list.replaceChildren(el("li", { class: "error", text: error.message }));
        return;
      }
    }
    if (generation !== this.generation) return;
    if (offset === 0) {
      this.items.clear();
      this.roles.clear();
      this.list.replaceChildren();
    }
    for (const member of ack.members) {
      this.ctx.learnName(member.id, member.name);
      this.online.set(member.id, member.online);
      this.add(member);
    }
    this.offset = offset + ack.members.length;
    this.setCount(ack.count);
    show($("members-more"), Boolean(ack.has_more));
    await this.watch(ack.members.map((m) => m.id));
  }

  async dmDraftMembers(room) {
    const me = this.ctx.me();
    const peer = await this.ctx.peerOf(room);
    const members = [{ id: me.id, name: me.name, online: true }, peer];
    return { members, count: 2, has_more: false };
  }

  add(member) {
    if (this.items.has(member.id)) return;
    this.roles.set(member.id, member.role || this.roles.get(member.id) || "member");
    const me = this.ctx.me();
    const self = member.id === me.id;
    const name = this.ctx.nameOf(member.id, member.name);
    const actions = self
      ? el("span", { class: "you-tag", text: "you" })
      : el(
          "span",
          { class: "member-actions" },
          el("button", {
            type: "button",
            class: "small",
            "data-testid": "member-dm",
            "aria-label": `Message ${name}`,
            text: "Message",
            onclick: () => this.ctx.startDm(member.id, this.ctx.nameOf(member.id, member.name)),
          }),
          el("button", {
            type: "button",
            class: "small",
            "data-testid": "member-invite",
            "aria-label": `Invite ${name} to a private room`,
            text: "Invite",
            onclick: () => this.openInvite(member.id),
          }),
          el("button", {
            type: "button",
            class: "small",
            "data-testid": "member-menu",
            "aria-label": `More for ${name}`,
            title: "Block, moderate",
            text: "⋯",
            onclick: () => this.openMenu(member),
          }),
        );
    const node = el(
      "li",
      { class: "member", "data-testid": "member", "data-user-id": member.id },
      el("span", {
        class: `${avatarClass(member.id)} small`,
        "aria-hidden": "true",
        text: initial(name),
      }),
      el("span", { class: "dot", "data-testid": "presence-dot", "aria-hidden": "true" }),
      el("span", {
        class: "member-name",
        "data-testid": "member-name",
        title: whoIs(name, member.id),
        text: name,
      }),
      el("span", { class: "role-badge", "data-testid": "member-role" }),
      el("span", { class: "sr-only presence-label" }),
      actions,
    );
    this.items.set(member.id, node);
    this.showRole(node, this.roles.get(member.id));
    this.setOnline(node, this.online.get(member.id) ?? Boolean(member.online));
    this.list.append(node);
    this.filter();
  }

  /** Show only the members whose name or id contains the search text (ignoring case). */
  filter() {
    const query = this.search.value.trim().toLowerCase();
    let shown = 0;
    for (const [id, node] of this.items) {
      const name = node.querySelector(".member-name").textContent.toLowerCase();
      const match = !query || name.includes(query) || id.toLowerCase().includes(query);
      node.hidden = !match;
      if (match) shown += 1;
    }
    show($("member-search-empty"), Boolean(query) && shown === 0);
  }

  remove(userId) {
    const node = this.items.get(userId);
    if (node) node.remove();
    this.items.delete(userId);
    this.filter();
  }

  setOnline(node, online) {
    node.dataset.online = online ? "true" : "false";
    node.querySelector(".presence-label").textContent = online ? " (online)" : " (offline)";
  }

  // --- presence -------------------------------------------------------------------------------

  async watch(ids) {
    const fresh = ids.filter((id) => !this.watched.has(id)).slice(0, WATCH_CAP - this.watched.size);
    for (let i = 0; i < fresh.length; i += WATCH_CHUNK) {
      const chunk = fresh.slice(i, i + WATCH_CHUNK);
      chunk.forEach((id) => this.watched.add(id));
      try {
        const ack = await this.ctx.call("watch", { users: chunk });
        for (const [id, online] of Object.entries(ack.online || {})) this.presence(id, online);
      } catch {
        chunk.forEach((id) => this.watched.delete(id));
        return;
      }
    }
  }

  unwatchAll() {
    const ids = [...this.watched];
    this.watched.clear();
    if (!this.ctx.connected()) return;
    for (let i = 0; i < ids.length; i += WATCH_CHUNK) {
      this.ctx.call("unwatch", { users: ids.slice(i, i + WATCH_CHUNK) }).catch(() => {});
    }
  }

  presence(userId, online) {
    this.online.set(userId, Boolean(online));
    const node = this.items.get(userId);
    if (node) this.setOnline(node, Boolean(online));
  }

  // --- room membership and names, live --------------------------------------------------------

  joined(roomId, user) {
    if (!this.room || this.room.id !== roomId || this.items.has(user.id)) return;
    this.setCount(this.count + 1);
    this.add({ id: user.id, name: user.name, online: this.online.get(user.id) ?? true });
    this.watch([user.id]);
  }

  left(roomId, user) {
    if (!this.room || this.room.id !== roomId || !this.items.has(user.id)) return;
    this.setCount(Math.max(0, this.count - 1));
    this.remove(user.id);
  }

  renamed(userId, name) {
    const node = this.items.get(userId);
    if (!node) return;
    const shown = node.querySelector(".member-name");
    shown.textContent = name;
    shown.title = whoIs(name, userId);
    node.hidden = false;
    this.filter();
    node.querySelector(".avatar").textContent = initial(name);
    const dm = node.querySelector('[data-testid="member-dm"]');
    if (dm) dm.setAttribute("aria-label", `Message ${name}`);
    const invite = node.querySelector('[data-testid="member-invite"]');
    if (invite) invite.setAttribute("aria-label", `Invite ${name} to a private room`);
  }

  /** A role changed (a `role` or `transfer` entry): the badge, and an open menu, follow. */
  setRole(roomId, userId, role) {
    if (!this.room || this.room.id !== roomId) return;
    this.roles.set(userId, role);
    const node = this.items.get(userId);
    if (node) this.showRole(node, role);
  }

  showRole(node, role) {
    const badge = node.querySelector(".role-badge");
    node.dataset.role = role;
    badge.dataset.role = role;
    badge.textContent = role === "member" ? "" : ROLE_LABELS[role];
    badge.hidden = role === "member";
  }

  openMenu(member) {
    const name = this.ctx.nameOf(member.id, member.name);
    this.ctx.menu(this.room, { id: member.id, name, role: this.roles.get(member.id) });
  }

  openInvite(userId) {
    openInvite(this.ctx, userId);
  }
}
