// Real socket.io clients (socket.io-client 4.x, default transports: long-polling, then the
// upgrade to a websocket) that subscribe to rooms whose entity never existed, as an outsider
// filling the server with names would. Client i subscribes, one acknowledgement at a time, to
// COUNTS[i] rooms `/doors/ghost-<i>-<n>/state`. Prints one JSON line
// `{"acked": [per client], "refused": [per client], "errors": [distinct error texts]}` once
// every client has its answers, then keeps the clients connected until a line arrives on
// stdin, disconnects them all, prints `{"closed": true}` and exits.
//
// usage: node bogus_rooms.mjs URL COUNT[,COUNT...]
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const [url, countsArg] = process.argv.slice(2);
const counts = countsArg.split(",").map(Number);

function connect() {
  return new Promise((resolve, reject) => {
    const s = io(url, { reconnection: false, timeout: 20000 });
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });
}

async function subscribeAll(s, i, count) {
  const out = { acked: 0, refused: 0, errors: new Set() };
  for (let n = 0; n < count; n++) {
    const answer = await s.timeout(60000).emitWithAck("subscribe", { room: `/doors/ghost-${i}-${n}/state` });
    if (answer && answer.error) {
      out.refused += 1;
      out.errors.add(answer.error);
    } else {
      out.acked += 1;
    }
  }
  return out;
}

const sockets = await Promise.all(counts.map(() => connect()));
const results = await Promise.all(sockets.map((s, i) => subscribeAll(s, i, counts[i])));
const errors = new Set(results.flatMap((r) => [...r.errors]));
console.log(JSON.stringify({
  acked: results.map((r) => r.acked),
  refused: results.map((r) => r.refused),
  errors: [...errors],
}));

const lines = createInterface({ input: process.stdin });
lines.once("line", async () => {
  for (const s of sockets) s.disconnect();
  console.log(JSON.stringify({ closed: true }));
  process.exit(0);
});
