// Opens N idle websocket connections to one node and holds them until stdin closes.
//   node idle.cjs <url> <tokens.json> <count>
// Prints one line "connected <n> failed <m>" once every attempt has settled.
// socket.io-client comes from NODE_PATH (the benchmark harness's node_modules).
const { io } = require("socket.io-client");
const fs = require("fs");

const [url, tokensFile, countText] = process.argv.slice(2);
const tokens = JSON.parse(fs.readFileSync(tokensFile, "utf8"));
const count = Number(countText);
const sockets = [];
let connected = 0;
let failed = 0;

function open(i) {
  return new Promise((resolve) => {
    const s = io(url, {
      transports: ["websocket"],
      auth: { token: tokens[i % tokens.length] },
      reconnection: false,
      forceNew: true,
    });
    sockets.push(s);
    s.once("session", () => { connected += 1; resolve(); });
    s.once("connect_error", () => { failed += 1; resolve(); });
  });
}

async function main() {
  for (let start = 0; start < count; start += 100) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 100); i += 1) batch.push(open(i));
    await Promise.all(batch);
  }
  process.stdout.write(`connected ${connected} failed ${failed}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => { sockets.forEach((s) => s.close()); process.exit(0); });
}

main();
