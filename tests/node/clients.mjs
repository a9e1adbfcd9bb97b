// N real socket.io clients (socket.io-client 4.x, websocket transport) subscribed to the given
// rooms. Each records, per room, every event's sequence number (second argument `{seq}`) and
// checks: no duplicate, no gap for state rooms after the sticky first value, never an older
// value after a newer one. Prints one JSON summary on stdout and exits.
//
// usage: node clients.mjs URL TOKEN CLIENTS ROOMS_FILE SECONDS [PATH]
//   TOKEN "-" = no auth object; ROOMS_FILE: one room per line; SECONDS: how long to listen
//   after every client subscribed; PATH: socket.io path (default /socket.io).
import { io } from "socket.io-client";
import { readFileSync } from "node:fs";

const [url, token, nClients, roomsFile, seconds, path] = process.argv.slice(2);
const rooms = readFileSync(roomsFile, "utf8").split("\n").map((r) => r.trim()).filter((r) => r);
const n = Number(nClients);

const summary = {
  clients: n,
  rooms: rooms.length,
  connected: 0,
  connectErrors: [],
  subscribeErrors: [],
  events: 0,
  duplicates: 0,
  gaps: 0,
  backwards: 0,
  firstWasSticky: 0,
  // room -> last seq and value (JSON text) seen by client 0, and how many clients disagree
  last: {},
  lastValues: {},
  disagree: 0,
  disagreeSample: [],
  latencyMs: [],
};

const sockets = [];
const state = []; // per client: room -> {seq, value}

function connect(i) {
  return new Promise((resolve) => {
    const opts = { transports: ["websocket"], reconnection: false, path: path || "/socket.io", timeout: 20000 };
    if (token !== "-") opts.auth = { token };
    const s = io(url, opts);
    const mine = {};
    state[i] = mine;
    for (const room of rooms) {
      s.on(room, (value, meta) => {
        summary.events += 1;
        if (meta && typeof meta.sent_ms === "number") {
          const l = Date.now() - meta.sent_ms;
          if (summary.latencyMs.length < 200000) summary.latencyMs.push(l);
        }
        const seq = meta ? meta.seq : -1;
        const prev = mine[room];
        if (prev === undefined) {
          summary.firstWasSticky += 1;
        } else if (seq === prev.seq) {
          summary.duplicates += 1;
        } else if (seq < prev.seq) {
          summary.backwards += 1;
        } else if (seq > prev.seq + 1 && !room.startsWith("/alerts") && !room.endsWith("/log")) {
          summary.gaps += 1;
        }
        mine[room] = { seq, value: JSON.stringify(value) };
      });
    }
    s.on("subscribe_error", (e) => summary.subscribeErrors.push(e));
    s.on("connect", () => {
      summary.connected += 1;
      for (const room of rooms) s.emit("subscribe", { room });
      resolve();
    });
    s.on("connect_error", (e) => {
      summary.connectErrors.push(String(e && e.message));
      resolve();
    });
    sockets.push(s);
  });
}

// Connect in waves so that a thousand clients do not all handshake at once.
for (let i = 0; i < n; i += 100) {
  const wave = [];
  for (let j = i; j < Math.min(n, i + 100); j++) wave.push(connect(j));
  await Promise.all(wave);
}
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const isStream = (room) => room.startsWith("/alerts/") || room.endsWith("/log") || room === "/beacons" || room === "/delivery_alerts";
for (const room of rooms) {
  const ref = state[0] && state[0][room];
  summary.last[room] = ref ? ref.seq : null;
  summary.lastValues[room] = ref ? ref.value : null;
  // Streams are live: a client that subscribed later did not see the earlier events.
  if (isStream(room)) continue;
  for (let i = 1; i < n; i++) {
    const mine = state[i] && state[i][room];
    if ((mine ? mine.seq : null) !== (ref ? ref.seq : null) || (mine && ref && mine.value !== ref.value)) {
      summary.disagree += 1;
      if (summary.disagreeSample.length < 10) {
        summary.disagreeSample.push({ client: i, room, seq: mine ? mine.seq : null, ref: ref ? ref.seq : null });
      }
    }
  }
}
const lat = summary.latencyMs.sort((a, b) => a - b);
const pct = (q) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] : null);
summary.latency = { samples: lat.length, p50: pct(0.5), p99: pct(0.99), p999: pct(0.999) };
delete summary.latencyMs;
for (const s of sockets) s.close();
process.stdout.write(JSON.stringify(summary) + "\n");
process.exit(0);
