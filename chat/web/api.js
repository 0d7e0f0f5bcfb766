// REST calls to the node that served the page. The session is the HttpOnly `chat_token`
// cookie set by register/login: the client never sees or stores the token itself.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** Called with no arguments when any request answers 401 (the session is gone). */
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export async function api(method, path, body) {
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
    if (response.status === 401 && !path.startsWith("/api/login")) onUnauthorized(failure);
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
