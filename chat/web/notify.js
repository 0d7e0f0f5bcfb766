// Desktop notifications of @mentions, behind a toggle of the user's (off by default). The
// browser's permission is asked only when the user turns the toggle on, never before: a
// permission prompt out of the blue is what makes people block a site for good.

import { $, listen } from "./dom.js";

const supported = () => typeof window.Notification === "function";

export class Notifier {
  /** @param ctx {signal, userId, open(roomId)} */
  constructor(ctx) {
    this.ctx = ctx;
    this.key = `chat:notify:${ctx.userId}`;
    this.toggle = $("notify-toggle");
    this.note = $("notify-note");
    this.enabled = this.stored() && supported() && Notification.permission === "granted";
    this.toggle.checked = this.enabled;
    this.toggle.disabled = !supported();
    this.note.textContent = supported() ? "" : "This browser cannot show notifications.";
    listen(ctx.signal, this.toggle, "change", () => this.changed(this.toggle.checked));
  }

  stored() {
    try {
      return localStorage.getItem(this.key) === "on";
    } catch {
      return false;
    }
  }

  store(on) {
    try {
      if (on) localStorage.setItem(this.key, "on");
      else localStorage.removeItem(this.key);
    } catch {
      /* the toggle lasts as long as the page */
    }
  }

  async changed(on) {
    this.note.textContent = "";
    if (on && Notification.permission !== "granted") {
      let answer = "denied";
      try {
        answer = await Notification.requestPermission();
      } catch {
        /* treated as refused */
      }
      if (answer !== "granted") {
        on = false;
        this.note.textContent = "Notifications are blocked for this site by the browser.";
      }
    }
    this.enabled = on;
    this.toggle.checked = on;
    this.store(on);
  }

  /** A live message that mentions the user arrived; `visible`: the user is looking at it. */
  mentioned(message, roomName, visible) {
    if (!this.enabled || visible || !supported() || Notification.permission !== "granted") return;
    try {
      const note = new Notification(`${message.from.name} in ${roomName}`, {
        body: message.text,
        tag: `${message.room}/${message.seq}`,
      });
      note.onclick = () => {
        window.focus();
        this.ctx.open(message.room);
        note.close();
      };
    } catch {
      /* some browsers only notify from a service worker: the highlight remains */
    }
  }
}
