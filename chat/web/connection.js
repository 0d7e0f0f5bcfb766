// The Socket.IO connection: its state for the user (connected / connecting / reconnecting /
// offline) and acknowledged calls that fail fast when the connection drops.

const ACK_TIMEOUT_MS = 10000;

const LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export class CallError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/** Error codes after which the very same request may be sent again (same cid). */
export function retriable(error) {
  return ["unavailable", "disconnected", "timeout", "rate_limited"].includes(
    error && error.code,
  );
}

export class Connection {
  /**
   * @param statusNode element showing the state (data-state attribute + text)
   * @param handlers {session, unauthorized(reason), serverDisconnect(endedBecause), state}
   */
  constructor(statusNode, handlers) {
    this.statusNode = statusNode;
    this.handlers = handlers;
    this.pending = new Set(); // rejecters of calls in flight, failed at once on disconnect
    this.connectedAt = 0; // when the current socket connected (with the token of that time)
    this.ended = null; // the code of the server's `session_end` before its disconnect
    this.moving = false; // reconnecting on purpose (onto a renewed token)
    if (typeof window.io !== "function") {
      this.setState("offline");
      throw new Error("socket.io client missing");
    }
    this.socket = window.io({
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
      withCredentials: true,
    });
    this.state = null;
    this.setState("connecting");
    this.bind();
  }

  bind() {
    const socket = this.socket;
    socket.on("connect", () => {
      this.connectedAt = Date.now();
      this.moving = false;
      this.setState("connected");
    });
    socket.on("session_end", (data) => {
      this.ended = data && data.code;
    });
    socket.on("disconnect", (reason) => {
      this.failPending("disconnected", "The connection was lost.");
      const ended = this.ended;
      this.ended = null;
      if (reason === "io client disconnect") {
        this.setState(this.moving ? "reconnecting" : "offline");
      } else if (reason === "io server disconnect") {
        // The server closed this socket on purpose (expired or revoked token, logout
        // elsewhere): it will not reconnect by itself. The app decides (renew, sign in again).
        this.setState("offline");
        this.handlers.serverDisconnect(ended);
      } else {
        this.setState(navigator.onLine === false ? "offline" : "reconnecting");
      }
    });
    socket.on("connect_error", (error) => {
      const code = error && error.data && error.data.code;
      if (code === "unauthorized") {
        this.setState("offline");
        this.handlers.unauthorized(error.data.reason);
        return;
      }
      // Refused by the server for another reason (socket.active is false then): retry later.
      if (!socket.active) setTimeout(() => this.socket === socket && socket.connect(), 2000);
      this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    });
    socket.io.on("reconnect_attempt", () => {
      if (!socket.connected) this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    });
    socket.io.on("reconnect_failed", () => this.setState("offline"));
    socket.on("session", (session) => this.handlers.session(session));
    this.onOffline = () => {
      if (!socket.connected) this.setState("offline");
    };
    this.onOnline = () => {
      if (!socket.connected) this.setState("reconnecting");
    };
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.statusNode.dataset.state = state;
    this.statusNode.textContent = LABELS[state];
    if (this.handlers.state) this.handlers.state(state);
  }

  get connected() {
    return Boolean(this.socket && this.socket.connected);
  }

  /** Connect again (after the server ended the socket, or refused it). */
  connect() {
    if (this.socket && !this.socket.connected) {
      this.setState("reconnecting");
      this.socket.connect();
    }
  }

  /** Move onto a renewed token: the handshake is where the server reads the cookie. */
  reconnect() {
    if (!this.socket) return;
    this.moving = true;
    this.socket.disconnect();
    this.socket.connect();
  }

  on(event, handler) {
    this.socket.on(event, handler);
  }

  /** Emit `event` with an ack; resolve with the ack's fields, reject with a CallError. */
  call(event, payload, timeout = ACK_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        reject(new CallError("disconnected", "Not connected."));
        return;
      }
      const fail = (code, message) => {
        this.pending.delete(fail);
        reject(new CallError(code, message));
      };
      this.pending.add(fail);
      this.socket.timeout(timeout).emit(event, payload, (error, ack) => {
        if (!this.pending.has(fail)) return; // already failed by a disconnect
        this.pending.delete(fail);
        if (error) reject(new CallError("timeout", "The server did not answer in time."));
        else if (ack && ack.ok) resolve(ack);
        else {
          const failure = (ack && ack.error) || {};
          reject(new CallError(failure.code || "internal", failure.message));
        }
      });
    });
  }

  /** Fire and forget (typing notices). */
  emit(event, payload) {
    if (this.connected) this.socket.emit(event, payload, () => {});
  }

  failPending(code, message) {
    for (const fail of [...this.pending]) fail(code, message);
  }

  close() {
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    this.failPending("disconnected", "Signed out.");
    const socket = this.socket;
    this.socket = null;
    socket.disconnect();
    socket.off(); // this page's handlers only: the socket is done
    socket.io.off("reconnect_attempt");
    socket.io.off("reconnect_failed");
  }
}
