// Entry point: find out whether the browser is signed in (GET /api/me with the HttpOnly
// cookie), then show the sign-in forms or the chat.

import * as api from "./api.js";
import { Chat } from "./chat.js";
import { $, show } from "./dom.js";

const FRIENDLY = {
  invalid_credentials: "Wrong email or password.",
  email_taken: "An account with this email exists already. Sign in instead?",
  network: "The server cannot be reached. Check your connection and try again.",
};

let chat = null;

/**
 * The server's password rules that need no list (chat/core/passwords.py): said before the
 * round trip. The server checks them all again, and the common-password list too.
 */
function passwordProblem(password, email, name) {
  if (password.length < 8) return "The password needs at least 8 characters.";
  if (!password.trim()) return "The password cannot be only spaces.";
  if (new Set(password).size === 1) return "The password cannot be one character repeated.";
  const folded = password.toLowerCase();
  const local = email.split("@")[0];
  for (const [part, what] of [[local, "email address"], [name || local, "name"]]) {
    if (part.length >= 4 && folded.includes(part.toLowerCase())) {
      return `The password cannot contain your ${what}.`;
    }
  }
  return "";
}

function showAuth(message = "") {
  if (chat) {
    const old = chat;
    chat = null;
    old.destroy();
  }
  show($("boot"), false);
  show($("chat-view"), false);
  show($("auth-view"), true);
  $("login-password").value = "";
  $("register-password").value = "";
  selectTab("login");
  $("auth-error").textContent = message;
  $("login-email").focus();
}

function startChat(user, expiresIn) {
  show($("boot"), false);
  show($("auth-view"), false);
  show($("chat-view"), true);
  $("auth-error").textContent = "";
  try {
    chat = new Chat(user, { signedOut: (message) => showAuth(message) }, expiresIn);
  } catch (error) {
    showAuth(`The chat could not start: ${error.message}`);
    return;
  }
  $("composer-input").focus();
}

function selectTab(which) {
  for (const name of ["login", "register"]) {
    const selected = name === which;
    $(`tab-${name}`).setAttribute("aria-selected", String(selected));
    $(`tab-${name}`).tabIndex = selected ? 0 : -1;
    show($(`${name}-form`), selected);
  }
  $("auth-error").textContent = "";
}

async function submitting(form, action) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  $("auth-error").textContent = "";
  try {
    await action();
  } catch (error) {
    $("auth-error").textContent = FRIENDLY[error.code] || error.message;
  } finally {
    button.disabled = false;
  }
}

function bindAuthForms() {
  $("tab-login").addEventListener("click", () => selectTab("login"));
  $("tab-register").addEventListener("click", () => selectTab("register"));
  for (const tab of [$("tab-login"), $("tab-register")]) {
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = tab.id === "tab-login" ? "register" : "login";
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  }
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const email = $("login-email").value.trim();
    const password = $("login-password").value;
    if (!email || !password) {
      $("auth-error").textContent = "Enter your email and password.";
      return;
    }
    submitting(event.target, async () => {
      const { user, expires_in } = await api.login(email, password);
      startChat(user, expires_in);
    });
  });
  $("register-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("register-name").value.trim();
    const email = $("register-email").value.trim();
    const password = $("register-password").value;
    if (!email.includes("@")) {
      $("auth-error").textContent = "Enter a valid email address.";
      return;
    }
    const problem = passwordProblem(password, email, name);
    if (problem) {
      $("auth-error").textContent = problem;
      return;
    }
    submitting(event.target, async () => {
      const { user, expires_in } = await api.register(email, password, name || undefined);
      startChat(user, expires_in);
    });
  });
}

async function boot() {
  bindAuthForms();
  api.setUnauthorizedHandler(() => {
    if (chat) chat.signOut("Your session has ended. Please sign in again.");
  });
  try {
    const { user, expires_in } = await api.me(); // an expired token is renewed on the way
    startChat(user, expires_in);
  } catch (error) {
    showAuth(error.status === 401 ? "" : FRIENDLY[error.code] || error.message);
  }
}

boot();
