// Keeps a sign-in alive for days without a password. The access token (the HttpOnly
// `chat_token` cookie, an hour by default) is renewed shortly before it expires with the refresh
// token (the HttpOnly `chat_refresh` cookie, sent to /api/refresh only), and the socket moves
// onto the new one. A socket the server ended because its token expired (`session_end`), or a
// connection refused for want of a valid token, renews and connects again. When renewing is
// refused, the sign-in is over: back to the sign-in form. The page never sees either token.

import * as api from "./api.js";

export const SESSION_ENDED = "Your session has ended. Please sign in again.";
const RETRY_MS = 5000; // after a renewal that failed for another reason than 401
const MAX_RESUMES = 3; // resumes in a row without a session: the token is refused for good

export class SessionKeeper {
  /**
   * @param expiresIn seconds the current access token has left
   * @param hooks {reconnect(), connect(), connectedAt(), signOut(message)}
   */
  constructor(expiresIn, hooks) {
    this.hooks = hooks;
    this.timer = null;
    this.renewedAt = 0;
    this.resumes = 0;
    this.resuming = false;
    this.unsubscribe = api.onRenewed((data) => this.renewed(data.expires_in));
    this.schedule(expiresIn);
  }

  /** Renew a little before the token expires (a minute, or a fifth of short lifetimes). */
  schedule(expiresIn) {
    clearTimeout(this.timer);
    if (typeof expiresIn !== "number") return;
    const lead = Math.min(60, expiresIn * 0.2);
    this.timer = setTimeout(() => this.renew(), Math.max(1, expiresIn - lead) * 1000);
  }

  renewed(expiresIn) {
    this.renewedAt = Date.now();
    this.schedule(expiresIn);
  }

  /** The timer: a new access token, then the socket moves onto it. */
  async renew() {
    if (await this.refreshed()) this.hooks.reconnect();
  }

  /** The socket was ended (`token_expired`) or refused: connect again with a valid token. */
  async resume() {
    if (this.resuming) return;
    this.resuming = true;
    try {
      if (++this.resumes > MAX_RESUMES) {
        this.hooks.signOut(SESSION_ENDED);
        return;
      }
      // A cookie renewed since the socket connected is good already (a REST call renewed it).
      const fresh = this.renewedAt > this.hooks.connectedAt();
      if (fresh || (await this.refreshed())) this.hooks.connect();
    } finally {
      this.resuming = false;
    }
  }

  /** The server ended the socket, saying why (`session_end`); false: for another reason. */
  ended(code) {
    if (code === "token_revoked") this.hooks.signOut(SESSION_ENDED);
    else if (code === "token_expired") this.resume();
    else return false;
    return true;
  }

  /** The server refused the connection (`connect_error` `unauthorized`, with its reason). */
  refused(reason) {
    if (reason === "token_revoked") this.hooks.signOut(SESSION_ENDED);
    else this.resume(); // expired, or no token (the browser dropped the expired cookie)
  }

  /** A `session` arrived: the token is accepted. */
  connected() {
    this.resumes = 0;
  }

  async refreshed() {
    try {
      await api.refresh(); // its listener reschedules the timer
      return true;
    } catch (error) {
      if (error.status === 401) {
        this.hooks.signOut(SESSION_ENDED);
      } else {
        clearTimeout(this.timer); // offline, or rate-limited: try again soon
        this.timer = setTimeout(() => this.renew(), RETRY_MS);
      }
      return false;
    }
  }

  stop() {
    clearTimeout(this.timer);
    this.unsubscribe();
  }
}
