// REST calls to the node that served the page. The session is the HttpOnly `chat_token`
// cookie set by register/login/refresh, renewed with the HttpOnly `chat_refresh` cookie (sent to
// /api/refresh only): the client never sees or stores either token itself.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** Called when a request answers 401 and a refresh cannot help (the sign-in is over). */
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** Routes whose 401 means what it says: no refresh, no retry. */
const OWN_401 = ["/api/login", "/api/register", "/api/refresh"];

const renewedListeners = new Set();
/** `listener({user, expires_in})` after every successful refresh; returns the unsubscriber. */
export function onRenewed(listener) {
  renewedListeners.add(listener);
  return () => renewedListeners.delete(listener);
}

let refreshing = null;
/** Renew the access token cookie with the refresh token cookie (one request at a time). */
export function refresh() {
  if (!refreshing) {
    refreshing = api("POST", "/api/refresh")
      .then((data) => {
        for (const listener of renewedListeners) listener(data);
        return data;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

async function renewed() {
  try {
    await refresh();
    return true;
  } catch {
    return false;
  }
}

export async function api(method, path, body, retried = false) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    const failure = new ApiError(
      response.status,
      error.code || "http_error",
      error.message || `HTTP ${response.status}`,
    );
    // DELETE /api/me answers 401 for a wrong password: that ends no session.
    const own =
      OWN_401.some((prefix) => path.startsWith(prefix)) || (method === "DELETE" && path === "/api/me");
    if (response.status === 401 && !own) {
      // An expired access token: renew it and try once more.
      if (!retried && (await renewed())) return api(method, path, body, true);
      onUnauthorized(failure);
    }
    throw failure;
  }
  return data;
}

export const register = (email, password, name) =>
  api("POST", "/api/register", name ? { email, password, name } : { email, password });
export const login = (email, password) => api("POST", "/api/login", { email, password });
export const logout = () => api("POST", "/api/logout");
export const me = () => api("GET", "/api/me");
export const userById = (id) => api("GET", `/api/users/${encodeURIComponent(id)}`);
export const listRooms = () => api("GET", "/api/rooms");
export const createRoom = (room) => api("POST", "/api/rooms", room);
export const deleteMe = (password) => api("DELETE", "/api/me", { password });
