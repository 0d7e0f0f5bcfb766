// DOM helpers. Every string that reaches the page goes through a text node or an attribute
// set with setAttribute: nothing here (or anywhere in the client) parses HTML.

export const $ = (id) => document.getElementById(id);

/**
 * Build an element: el("li", {class: "x", "data-seq": 3, text: "hi"}, child, "more text").
 * Strings among the children become text nodes. Function values of "on…" keys are listeners;
 * string values of "on…" keys and "style" are refused (the CSP would block them anyway).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") {
      node.className = value;
    } else if (key === "text") {
      node.textContent = String(value);
    } else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      node.addEventListener(key.slice(2), value);
    } else if (key === "style") {
      throw new TypeError("inline styles are not allowed (CSP)");
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** addEventListener that ends with `signal` (the signed-in session's AbortSignal). */
export function listen(signal, node, type, handler, options = {}) {
  node.addEventListener(type, handler, { ...options, signal });
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

// --- links in message text -------------------------------------------------------------------

const URL_CANDIDATE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?'")\]}>*_~]+$/;

/** The URL if `candidate` is an absolute http(s) URL with a host, else null. */
export function httpUrl(candidate) {
  let url;
  try {
    url = new URL(candidate);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return url.hostname ? url : null;
}

/**
 * Message text as a fragment of text nodes, with http(s) URLs as links. Anything that is not
 * a parseable http(s) URL (javascript:, data:, …) stays text.
 */
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let done = 0;
  for (const match of text.matchAll(URL_CANDIDATE)) {
    let candidate = match[0];
    const trailing = candidate.match(TRAILING_PUNCTUATION);
    if (trailing) candidate = candidate.slice(0, candidate.length - trailing[0].length);
    // Keep a closing parenthesis that belongs to the URL: https://en.wikipedia.org/wiki/A_(b)
    if (trailing && trailing[0].startsWith(")") && count(candidate, "(") > count(candidate, ")")) {
      candidate += ")";
    }
    const url = httpUrl(candidate);
    if (!url) continue;
    fragment.append(text.slice(done, match.index));
    fragment.append(
      el("a", {
        href: url.href,
        rel: "noopener noreferrer",
        target: "_blank",
        referrerpolicy: "no-referrer",
        text: candidate,
      }),
    );
    done = match.index + candidate.length;
  }
  fragment.append(text.slice(done));
  return fragment;
}

function count(text, char) {
  return text.split(char).length - 1;
}

// --- small formatting helpers ----------------------------------------------------------------

const FULL_DATE = { weekday: "long", day: "numeric", month: "long", year: "numeric" };

export function timeOf(ts) {
  const date = new Date(ts);
  return {
    short: date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    full: date.toLocaleString([], { ...FULL_DATE, hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    iso: date.toISOString(),
  };
}

/** Whether two timestamps fall on the same local calendar day. */
export function sameDay(a, b) {
  return new Date(a).toDateString() === new Date(b).toDateString();
}

/** The label of a day separator: "Today", "Yesterday", else the full date; `full` always. */
export function dayLabel(ts) {
  const date = new Date(ts);
  const full = date.toLocaleDateString([], FULL_DATE);
  const now = Date.now();
  if (sameDay(ts, now)) return { text: "Today", full };
  if (sameDay(ts, now - 86400000)) return { text: "Yesterday", full };
  return { text: full, full };
}

/**
 * The tooltip of a shown name: the name and the user's id. Display names are not unique and
 * anyone may call themselves "Admin"; the id is what tells two people apart.
 */
export function whoIs(name, id) {
  return `${name} · user id ${id}`;
}

/** The first character of a name, for its avatar. */
export function initial(name) {
  return ([...(name || "?").trim()][0] || "?").toUpperCase();
}

/** A random id for a message's cid (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
