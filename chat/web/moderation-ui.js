// A member's menu (the "⋯" of a row in the members panel): message, block or unblock, and
// for the room's owners and admins the moderation actions the server would allow on that
// member: kick, ban and mute (with a duration), unmute, make admin or member, and for the
// owner, handing the room over. Each action's entry comes back in the ack and live.

import { $, el, listen } from "./dom.js";
import { DURATIONS, ROLE_LABELS, mayModerate } from "./roles.js";

/**
 * @param ctx {signal, me(), nameOf(id, fallback), startDm(id, name), blocks: Blocks,
 *             moderate(action, roomId, userId, extra): Promise<ack>}
 */
export class MemberMenu {
  constructor(ctx) {
    this.ctx = ctx;
    this.dialog = $("member-dialog");
    this.target = null;
    listen(ctx.signal, $("member-dialog-close"), "click", () => this.dialog.close());
  }

  /** Open the menu of `member` ({id, name, role}) in `room`. */
  open(room, member) {
    this.target = { room, member };
    this.render();
    $("member-dialog-error").textContent = "";
    this.dialog.showModal();
  }

  /** Draw the menu again (a role or a block changed while it is open). */
  render() {
    if (!this.target) return;
    const { room, member } = this.target;
    const name = this.ctx.nameOf(member.id, member.name);
    $("member-dialog-name").textContent = name;
    $("member-dialog-role").textContent = ROLE_LABELS[member.role] || "";
    const groups = [this.personal(member, name)];
    if (room.kind === "public" || room.kind === "private") {
      if (mayModerate(room.role, member.role)) groups.push(this.moderation(room, member));
      if (room.role === "owner") groups.push(this.ownership(room, member, name));
    }
    $("member-dialog-actions").replaceChildren(...groups);
  }

  personal(member, name) {
    const blocked = this.ctx.blocks.has(member.id);
    return el(
      "div",
      { class: "row" },
      this.button("Message", "menu-dm", () => {
        this.dialog.close();
        this.ctx.startDm(member.id, name);
      }),
      this.button(blocked ? "Unblock" : "Block", blocked ? "menu-unblock" : "menu-block", () =>
        this.run(() => this.ctx.blocks.set(member.id, !blocked)),
      ),
    );
  }

  moderation(room, member) {
    const banFor = durationSelect("menu-ban-duration", [[0, "until unbanned"], ...DURATIONS]);
    const muteFor = durationSelect("menu-mute-duration", DURATIONS);
    const act = (action, extra) => () => this.act(action, room, member, extra);
    return el(
      "div",
      { class: "stack", role: "group", "aria-label": "Moderation" },
      el("h3", { class: "label-small", text: "Moderation" }),
      el("div", { class: "row" }, this.button("Remove from room", "menu-kick", act("kick"), true)),
      el(
        "div",
        { class: "row" },
        this.button("Mute", "menu-mute", () => this.act("mute", room, member, { duration_s: +muteFor.value })),
        muteFor,
        this.button("Unmute", "menu-unmute", act("unmute")),
      ),
      el(
        "div",
        { class: "row" },
        this.button("Ban", "menu-ban", () => {
          const seconds = +banFor.value;
          this.act("ban", room, member, seconds ? { duration_s: seconds } : {});
        }, true),
        banFor,
      ),
    );
  }

  ownership(room, member, name) {
    const admin = member.role === "admin";
    const confirm = el("span", { class: "row", hidden: true });
    confirm.append(
      el("span", { class: "small-text", text: `Make ${name} the owner? You become an admin.` }),
      this.button("Hand over", "menu-transfer-confirm", () => this.act("transfer", room, member), true),
    );
    return el(
      "div",
      { class: "stack", role: "group", "aria-label": "Roles" },
      el("h3", { class: "label-small", text: "Roles" }),
      el(
        "div",
        { class: "row" },
        admin
          ? this.button("Make member", "menu-make-member", () => this.act("role", room, member, { role: "member" }))
          : this.button("Make admin", "menu-make-admin", () => this.act("role", room, member, { role: "admin" })),
        this.button("Transfer ownership", "menu-transfer", () => {
          confirm.hidden = false;
        }),
      ),
      confirm,
    );
  }

  button(text, testid, onclick, danger = false) {
    return el("button", {
      type: "button",
      class: danger ? "small danger" : "small",
      "data-testid": testid,
      text,
      onclick,
    });
  }

  async act(action, room, member, extra = {}) {
    await this.run(async () => {
      await this.ctx.moderate(action, room.id, member.id, extra);
      this.dialog.close();
    });
  }

  async run(action) {
    $("member-dialog-error").textContent = "";
    try {
      await action();
    } catch (error) {
      $("member-dialog-error").textContent = error.message;
    }
  }
}

function durationSelect(testid, choices) {
  return el(
    "select",
    { "data-testid": testid, "aria-label": "For how long" },
    ...choices.map(([seconds, label]) => el("option", { value: seconds, text: label })),
  );
}
