// Long-lived socket.io clients (socket.io-client 4.x, websocket transport) following rooms
// until stdin closes; they reconnect if their server goes away (and subscribe again). Per room
// and client: sequence numbers never go backwards nor repeat, logical times (`meta.t`) never go
// backwards. Client 0 records every event it gets (room -> [[seq, t, value JSON]]) so that the
// caller can compare each with an uninterrupted run; `pauseMs` is the longest time without any
// event at client 0 (what a dashboard sees of an upstream takeover). Prints one JSON summary.
//
// usage: node follow.mjs URL TOKEN CLIENTS ROOMS_FILE
//   TOKEN "-" = no auth object; ROOMS_FILE: one room per line.
import { io } from "socket.io-client";
import { readFileSync } from "node:fs";

const [url, token, nClients, roomsFile] = process.argv.slice(2);
const rooms = readFileSync(roomsFile, "utf8").split("\n").map((r) => r.trim()).filter((r) => r);
const n = Number(nClients);

const summary = {
  clients: n,
  connects: 0,
  disconnects: 0,
  subscribeErrors: [],
  events: 0,
  duplicates: 0,
  backwards: 0,
  timeBackwards: 0,
  samples: [],
  pauseMs: 0,
  pauseAt: null,
  log: {},
  lastValues: {},
  disagree: 0,
};

const sockets = [];
const state = [];
let lastEvent = null;

for (let i = 0; i < n; i++) {
  const opts = { transports: ["websocket"], reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000, timeout: 5000 };
  if (token !== "-") opts.auth = { token };
  const s = io(url, opts);
  const mine = {};
  state[i] = mine;
  for (const room of rooms) {
    s.on(room, (value, meta) => {
      summary.events += 1;
      const seq = meta ? meta.seq : -1;
      const t = meta ? meta.t : -1;
      const text = JSON.stringify(value);
      const prev = mine[room];
      if (prev !== undefined) {
        if (seq < prev.seq) summary.backwards += 1;
        else if (seq === prev.seq) summary.duplicates += 1;
        if (t < prev.t) summary.timeBackwards += 1;
        if ((seq <= prev.seq || t < prev.t) && summary.samples.length < 10) {
          summary.samples.push({ client: i, room, seq, t, prev: [prev.seq, prev.t] });
        }
      }
      mine[room] = { seq, t, value: text };
      if (i === 0) {
        (summary.log[room] ||= []).push([seq, t, text]);
        const now = Date.now();
        if (lastEvent !== null && now - lastEvent > summary.pauseMs) {
          summary.pauseMs = now - lastEvent;
          summary.pauseAt = now;
        }
        lastEvent = now;
      }
    });
  }
  s.on("subscribe_error", (e) => summary.subscribeErrors.push(e));
  s.on("connect", () => {
    summary.connects += 1;
    for (const room of rooms) s.emit("subscribe", { room });
  });
  s.on("disconnect", () => {
    summary.disconnects += 1;
  });
  sockets.push(s);
}

process.stdin.resume();
await new Promise((r) => process.stdin.on("end", r));
const disconnects = summary.disconnects;
for (const room of rooms) {
  const ref = state[0][room];
  summary.lastValues[room] = ref ? ref.value : null;
  for (let i = 1; i < n; i++) {
    const mine = state[i][room];
    if ((mine ? mine.value : null) !== (ref ? ref.value : null)) summary.disagree += 1;
  }
}
for (const s of sockets) s.close();
summary.disconnects = disconnects;
// Exit once the (large) summary is flushed to the pipe.
process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(0));
