// The sidebar: the room and DM lists with unread badges, creating, browsing and joining
// rooms, the account box (rename, sign out), and the drawers of narrow screens.

import { $, el, initial, listen, show } from "./dom.js";
import { avatarClass } from "./message-item.js";

const KIND_ORDER = { lobby: 0, public: 1, private: 1, dm: 2 };

export class Sidebar {
  /**
   * @param ctx {rooms(): Map, current(): id, me(): user, select(id), create(spec),
   *             join(id), publicRooms(): Promise<room[]>, rename(name), logout()}
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.items = new Map(); // room id -> <li>
    this.chat = $("chat-view");
    this.bindDrawers();
    this.bindProfile();
    this.bindCreate();
    this.bindBrowse();
  }

  // --- room lists -----------------------------------------------------------------------------

  render() {
    const rooms = [...this.ctx.rooms().values()].sort(
      (a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || a.name.localeCompare(b.name),
    );
    for (const [id, node] of this.items) {
      if (!this.ctx.rooms().has(id)) {
        node.remove();
        this.items.delete(id);
      }
    }
    const groups = { rooms: [], dms: [] };
    for (const room of rooms) {
      let node = this.items.get(room.id);
      if (node && node.firstElementChild.dataset.kind !== room.kind) node = null; // new icon
      if (!node) {
        node = this.item(room);
        this.items.set(room.id, node);
      }
      this.update(room, node);
      groups[room.kind === "dm" ? "dms" : "rooms"].push(node);
    }
    place($("room-list"), groups.rooms);
    place($("dm-list"), groups.dms);
    show($("dm-empty"), groups.dms.length === 0);
    this.renderDrawerBadge(rooms);
  }

  /** The phone's menu button: how many unread messages the other rooms hold. */
  renderDrawerBadge(rooms) {
    let unread = 0;
    let mentioned = false;
    for (const room of rooms) {
      if (room.id === this.ctx.current()) continue;
      unread += room.unread;
      mentioned ||= room.mentions > 0;
    }
    const badge = $("drawer-badge");
    badge.hidden = unread === 0;
    badge.textContent = countText(unread);
    badge.classList.toggle("mention-badge", mentioned);
    badge.title = unread ? `${unread} unread in other rooms` : "";
  }

  item(room) {
    let icon;
    if (room.kind === "dm") {
      const colour = avatarClass(room.peer(this.ctx.me().id));
      icon = el("span", { class: `${colour} tiny`, "aria-hidden": "true" });
    } else if (room.kind === "private") {
      const lock = "/static/icon-lock.svg";
      icon = el("img", { class: "room-icon", src: lock, alt: "Private:", width: 14, height: 14 });
    } else {
      icon = el("span", { class: "room-icon", "aria-hidden": "true", text: "#" });
    }
    const button = el(
      "button",
      {
        type: "button",
        class: "room-item",
        "data-testid": "room-item",
        "data-room": room.id,
        "data-kind": room.kind,
        onclick: () => {
          this.ctx.select(room.id);
          this.closeDrawers();
        },
      },
      icon,
      el("span", { class: "room-name", "data-testid": "room-name" }),
      el("span", { class: "badge mention-badge", "data-testid": "mention-badge", hidden: true }),
      el("span", { class: "badge unread-badge", "data-testid": "unread-badge", hidden: true }),
      el("span", { class: "sr-only unread-label" }),
    );
    return el("li", {}, button);
  }

  update(room, node) {
    const button = node.firstElementChild;
    const name = button.querySelector(".room-name");
    if (name.textContent !== room.name) name.textContent = room.name;
    if (room.kind === "dm") {
      const avatar = button.querySelector(".avatar");
      avatar.textContent = initial(room.name);
    }
    const mentionBadge = button.querySelector(".mention-badge");
    mentionBadge.hidden = !room.mentions;
    mentionBadge.textContent = `@${countText(room.mentions)}`;
    mentionBadge.title = room.mentions ? `${countText(room.mentions)} mentioning you` : "";
    const badge = button.querySelector(".unread-badge");
    const unread = countText(room.unread);
    badge.hidden = room.unread === 0;
    if (badge.textContent !== unread) badge.textContent = unread;
    button.querySelector(".unread-label").textContent =
      room.unread ? `, ${room.unread} unread` : "";
    button.dataset.unread = String(room.unread);
    if (room.id === this.ctx.current()) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }

  // --- drawers (narrow screens) -----------------------------------------------------------------

  bindDrawers() {
    listen(this.ctx.signal, $("drawer-toggle"), "click", () => this.toggle("rooms"));
    listen(this.ctx.signal, $("members-toggle"), "click", () => this.toggle("members"));
    listen(this.ctx.signal, $("members-close"), "click", () => this.closeDrawers());
    listen(this.ctx.signal, $("backdrop"), "click", () => this.closeDrawers());
    listen(this.ctx.signal, document, "keydown", (event) => {
      if (event.key === "Escape" && this.chat.dataset.drawer) this.closeDrawers();
    });
  }

  toggle(which) {
    if (this.chat.dataset.drawer === which) {
      this.closeDrawers();
      return;
    }
    this.chat.dataset.drawer = which;
    $("drawer-toggle").setAttribute("aria-expanded", String(which === "rooms"));
    $("members-toggle").setAttribute("aria-expanded", String(which === "members"));
    show($("backdrop"), true);
    const panel = which === "rooms" ? $("sidebar") : $("members");
    const first = panel.querySelector('[aria-current="page"], button, input');
    if (first) first.focus();
  }

  closeDrawers() {
    const was = this.chat.dataset.drawer;
    delete this.chat.dataset.drawer;
    $("drawer-toggle").setAttribute("aria-expanded", "false");
    $("members-toggle").setAttribute("aria-expanded", "false");
    show($("backdrop"), false);
    if (was) $(was === "rooms" ? "drawer-toggle" : "members-toggle").focus({ preventScroll: true });
  }

  // --- account --------------------------------------------------------------------------------

  bindProfile() {
    const form = $("rename-form");
    const input = $("rename-input");
    listen(this.ctx.signal, $("rename-open"), "click", () => {
      input.value = this.ctx.me().name;
      $("rename-error").textContent = "";
      show(form, true);
      input.focus();
      input.select();
    });
    listen(this.ctx.signal, $("rename-cancel"), "click", () => show(form, false));
    listen(this.ctx.signal, form, "submit", async (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name) return;
      try {
        await this.ctx.rename(name);
        show(form, false);
        $("rename-open").focus();
      } catch (error) {
        $("rename-error").textContent = error.message;
      }
    });
    listen(this.ctx.signal, $("logout"), "click", () => this.ctx.logout());
  }

  showMe(user) {
    $("me-name").textContent = user.name;
    $("me-id").textContent = user.id;
    $("me-name").dataset.userId = user.id;
  }

  // --- create, browse, join -------------------------------------------------------------------

  bindCreate() {
    const dialog = $("create-dialog");
    const form = $("create-form");
    listen(this.ctx.signal, $("create-open"), "click", () => {
      form.reset();
      $("create-error").textContent = "";
      dialog.showModal();
    });
    listen(this.ctx.signal, $("create-cancel"), "click", () => dialog.close());
    listen(this.ctx.signal, form, "submit", async (event) => {
      event.preventDefault();
      const id = $("create-id").value.trim();
      const name = $("create-name").value.trim();
      try {
        const managed = $("create-managed").checked;
        const limit = $("create-limit").value.trim();
        const spec = { id, ...(name ? { name } : {}), private: managed || $("create-private").checked };
        if (managed) spec.managed = true;
        if (limit) spec.member_limit = Number(limit);
        await this.ctx.create(spec);
        dialog.close();
        this.closeDrawers();
      } catch (error) {
        $("create-error").textContent = error.message;
      }
    });
  }

  bindBrowse() {
    const dialog = $("browse-dialog");
    listen(this.ctx.signal, $("browse-open"), "click", async () => {
      $("browse-error").textContent = "";
      $("browse-list").replaceChildren(el("li", { class: "muted", text: "Loading…" }));
      dialog.showModal();
      try {
        this.renderBrowse(await this.ctx.publicRooms());
      } catch (error) {
        $("browse-error").textContent = error.message;
      }
    });
    listen(this.ctx.signal, $("browse-close"), "click", () => dialog.close());
    listen(this.ctx.signal, $("join-form"), "submit", async (event) => {
      event.preventDefault();
      await this.joinFromDialog($("join-id").value.trim());
    });
  }

  renderBrowse(rooms) {
    const mine = this.ctx.rooms();
    const items = rooms
      .filter((room) => !room.private && !room.id.startsWith("dm:"))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((room) => {
        const member = mine.has(room.id);
        return el(
          "li",
          { "data-testid": "browse-item", "data-room": room.id },
          el(
            "span",
            { class: "browse-name" },
            el("strong", { text: room.name }),
            el("span", {
              class: "muted small-text",
              text: ` ${room.id} · ${room.last_seq} messages`,
            }),
          ),
          el("button", {
            type: "button",
            class: "small",
            "data-testid": "browse-join",
            text: member ? "Open" : "Join",
            onclick: () => this.joinFromDialog(room.id),
          }),
        );
      });
    $("browse-list").replaceChildren(
      ...(items.length ? items : [el("li", { class: "muted", text: "No public rooms yet." })]),
    );
  }

  async joinFromDialog(roomId) {
    if (!roomId) return;
    try {
      if (this.ctx.rooms().has(roomId)) this.ctx.select(roomId);
      else await this.ctx.join(roomId);
      $("browse-dialog").close();
      this.closeDrawers();
    } catch (error) {
      $("browse-error").textContent = error.message;
    }
  }
}

/** A count as shown: exact up to 99 (the server's cap: 100 means "more than 99"). */
export function countText(count) {
  return count > 99 ? "99+" : String(count);
}

/** Put `nodes` into `list` in this order, touching the DOM only where the order differs. */
function place(list, nodes) {
  const current = [...list.children];
  if (current.length === nodes.length && current.every((node, i) => node === nodes[i])) return;
  list.replaceChildren(...nodes);
}
