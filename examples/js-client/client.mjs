// A Node.js chat client: log in (registering the account if needed), connect with socket.io-client,
// send one message, print every message that arrives as "[time] name: text".
//
//   npm ci
//   node client.mjs --url http://127.0.0.1:8001 --email ann@example.com --password 'a passphrase'
//   BOT_TOKEN=svc_… node client.mjs --url http://127.0.0.1:8001    # a bot: a service token
//
// Stops on Ctrl-C, after --count N messages, or with --once as soon as its own message is back.
import { parseArgs } from "node:util";
import { randomUUID } from "node:crypto";
import { io } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: process.env.CHAT_URL ?? "http://127.0.0.1:8001" },
    email: { type: "string", default: process.env.CHAT_EMAIL },
    password: { type: "string", default: process.env.CHAT_PASSWORD },
    name: { type: "string" },
    room: { type: "string", default: "lobby" },
    text: { type: "string", default: "hello from the JS client" },
    count: { type: "string" },
    once: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

// A service token (`chat tokens create`, for bots): used as it is, no login. Only from the
// environment: a token in argv would show in `ps`.
const serviceToken = process.env.BOT_TOKEN || undefined;

if (opts.help || (!serviceToken && (!opts.email || !opts.password))) {
  console.error(
    "usage: node client.mjs [--url URL] --email EMAIL --password PASSWORD [--name NAME]\n" +
      "                      [--room lobby] [--text TEXT] [--count N | --once]\n" +
      "(or CHAT_URL, CHAT_EMAIL, CHAT_PASSWORD in the environment; a bot: BOT_TOKEN=svc_…\n" +
      "instead of the email and password)",
  );
  process.exit(opts.help ? 0 : 2);
}
const limit = opts.count === undefined ? Infinity : Number(opts.count);

/** POST a JSON body; resolve to [status, body]. */
async function post(path, body) {
  const resp = await fetch(new URL(path, opts.url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return [resp.status, await resp.json().catch(() => null), resp.headers.get("Retry-After")];
}

/** Log in; register the account when the login says 401 (unknown email or wrong password). */
async function login() {
  const creds = { email: opts.email, password: opts.password };
  let [status, body, retryAfter] = await post("/api/login", creds);
  if (status === 401) {
    [status, body] = await post("/api/register", { ...creds, ...(opts.name && { name: opts.name }) });
    if (status === 409) throw new Error(`${opts.email} exists and the password is not its password`);
  }
  if (status === 429) throw new Error(`too many logins from this address, retry in ${retryAfter} s`);
  if (status !== 200 && status !== 201) throw new Error(`login: ${status} ${JSON.stringify(body)}`);
  return body;
}

let token, user;
if (serviceToken) {
  token = serviceToken; // the user is the token's bot, named in `session`
} else {
  try {
    ({ token, user } = await login());
  } catch (e) {
    console.error(`cannot log in at ${opts.url}: ${e.message}`);
    process.exit(1);
  }
}
// websocket only: no sticky sessions needed behind a load balancer.
const socket = io(opts.url, { auth: { token }, transports: ["websocket"] });
const lastSeq = new Map(); // room -> last seq seen, for `sync` after a reconnect
const cid = randomUUID();
let received = 0;
let connectedBefore = false;

function stop(code = 0) {
  socket.disconnect();
  process.exit(code);
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

function show(message) {
  lastSeq.set(message.room, Math.max(lastSeq.get(message.room) ?? 0, message.seq));
  const time = new Date(message.ts).toLocaleTimeString("en-GB", { hour12: false });
  const where = message.room === opts.room ? "" : `(${message.room}) `;
  // Edits, deletes and reactions are entries of the room too, with a `kind`.
  const what = message.kind ? `(${message.kind} of #${message.target_seq}) ` : "";
  const body =
    message.kind === "react" ? `${message.on ? "+" : "-"}${message.emoji}` : (message.text ?? "");
  console.log(`[${time}] ${where}${message.from.name}: ${what}${body}`);
  received += 1;
  if (received >= limit || (opts.once && message.cid === cid && message.from.id === user.id)) {
    stop(0);
  }
}

socket.on("message", show);

socket.on("session", (session) =>
  onSession(session).catch((e) => console.error(`no answer from the server: ${e.message}`)),
);

async function onSession(session) {
  if (connectedBefore) {
    // A reconnect: fetch what was missed meanwhile (messages above the session's last_seq
    // arrive live).
    const rooms = Object.fromEntries(lastSeq);
    const ack = await socket.timeout(10_000).emitWithAck("sync", { rooms });
    for (const entry of Object.values(ack.rooms ?? {})) entry.messages?.forEach(show);
    return;
  }
  connectedBefore = true;
  user ??= session.user;
  for (const room of session.rooms) lastSeq.set(room.id, room.last_seq);
  console.error(`connected to ${opts.url} as ${session.user.name} (${session.user.id})`);
  if (!session.rooms.some((room) => room.id === opts.room)) {
    let joined = await socket.timeout(10_000).emitWithAck("join", { room: opts.room });
    if (!joined.ok && joined.error.code === "no_room") {
      // Rooms are made through REST; the creator is a member at once, then
      const resp = await fetch(new URL("/api/rooms", opts.url), {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ id: opts.room }),
      });
      if (!resp.ok) joined = { ok: false, error: (await resp.json()).error };
      // join again, now as a member: its ack says from where this socket receives the room.
      else joined = await socket.timeout(10_000).emitWithAck("join", { room: opts.room });
    }
    if (!joined.ok) {
      console.error(`cannot join ${opts.room}: ${joined.error.code}: ${joined.error.message}`);
      stop(1);
    }
  }
  const message = { room: opts.room, text: opts.text, cid };
  const ack = await socket.timeout(10_000).emitWithAck("send", message);
  if (!ack.ok) {
    console.error(`send refused: ${ack.error.code}: ${ack.error.message}`);
    stop(1);
  }
}

socket.on("connect_error", async (err) => {
  if (err.data?.code === "unauthorized" && serviceToken) {
    // A service token does not expire: refused, it was revoked (or never was one).
    console.error("service token refused: revoked? (`chat tokens create` makes a new one)");
    stop(1);
  } else if (err.data?.code === "unauthorized") {
    // The token expired or was revoked: log in again and retry (the client does not retry a
    // refusal by itself).
    console.error("token refused, logging in again");
    try {
      socket.auth.token = (await login()).token;
    } catch (e) {
      console.error(`cannot log in: ${e.message}`);
      stop(1);
    }
    socket.connect();
  } else {
    console.error(`connection failed (${err.message}), retrying`);
  }
});

socket.on("disconnect", (reason) => console.error(`disconnected: ${reason}`));
