// Signing out leaves nothing of the user on the page: the next person at this browser sees
// none of it (lists, texts, search results, open dialogs, notices).

import { $, show } from "./dom.js";

const LISTS = [
  "room-list", "dm-list", "message-list", "pending-list", "member-list", "invite-results",
  "dmfind-results", "member-dialog-actions",
];
const TEXTS = [
  "room-title", "room-kind", "room-role", "send-error", "history-status", "me-name",
  "room-notice", "invite-status", "member-dialog-name",
];
const HIDDEN = ["new-below", "drawer-badge", "backdrop", "room-notice", "blocked-note", "dm-block", "room-role"];
const INPUTS = ["composer-input", "member-search", "invite-search", "invite-user", "dmfind-search", "delete-password"];

export function clearPage() {
  for (const id of LISTS) $(id).replaceChildren();
  for (const id of TEXTS) $(id).textContent = "";
  for (const id of HIDDEN) show($(id), false);
  for (const id of INPUTS) $(id).value = ""; // the composer's draft above all
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  delete $("chat-view").dataset.drawer;
  document.title = "Chat";
}
