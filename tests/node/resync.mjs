// Long-lived socket.io clients (socket.io-client 4.x, websocket transport) that reconnect when
// their server goes away and subscribe again on every connect. Per room, sequence numbers are
// checked within a connection: no duplicate, never backwards (also while the server's own
// upstream restarts). A reconnect is a new subscription to a possibly different process: its
// first value is taken as truth (counted as `resent` when it is the value held, `rewound` when
// its seq is lower). Prints one JSON summary.
//
// usage: node resync.mjs URL TOKEN CLIENTS ROOMS_FILE SECONDS
//   TOKEN "-" = no auth object; ROOMS_FILE: one room per line; SECONDS: how long to run.
import { io } from "socket.io-client";
import { readFileSync } from "node:fs";

const [url, token, nClients, roomsFile, seconds] = process.argv.slice(2);
const rooms = readFileSync(roomsFile, "utf8").split("\n").map((r) => r.trim()).filter((r) => r);
const n = Number(nClients);

const summary = {
  clients: n,
  connects: 0,
  disconnects: 0,
  connectErrors: 0,
  subscribeErrors: [],
  events: 0,
  duplicates: 0,
  backwards: 0,
  backwardsSample: [],
  // First value of a room after a reconnect: the value held (re-sent), or a lower seq (another
  // process's numbering).
  resent: 0,
  rewound: 0,
  last: {},
  lastValues: {},
  disagree: 0,
  disagreeSample: [],
};

const sockets = [];
const state = [];

for (let i = 0; i < n; i++) {
  const opts = {
    transports: ["websocket"],
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    randomizationFactor: 0.2,
    timeout: 5000,
  };
  if (token !== "-") opts.auth = { token };
  const s = io(url, opts);
  const mine = {};
  let fresh = new Set();
  state[i] = mine;
  for (const room of rooms) {
    s.on(room, (value, meta) => {
      summary.events += 1;
      const seq = meta ? meta.seq : -1;
      const prev = mine[room];
      const first = fresh.has(room);
      fresh.delete(room);
      const text = JSON.stringify(value);
      if (prev !== undefined && first) {
        if (seq === prev.seq && text === prev.value) summary.resent += 1;
        else if (seq <= prev.seq) summary.rewound += 1;
      } else if (prev !== undefined) {
        if (seq < prev.seq) {
          summary.backwards += 1;
          if (summary.backwardsSample.length < 10) summary.backwardsSample.push({ client: i, room, seq, prev: prev.seq });
        } else if (seq === prev.seq) {
          summary.duplicates += 1;
        }
      }
      mine[room] = { seq, value: text };
    });
  }
  s.on("subscribe_error", (e) => summary.subscribeErrors.push(e));
  s.on("connect", () => {
    summary.connects += 1;
    fresh = new Set(rooms);
    for (const room of rooms) s.emit("subscribe", { room });
  });
  s.on("disconnect", () => {
    summary.disconnects += 1;
  });
  s.on("connect_error", () => {
    summary.connectErrors += 1;
  });
  sockets.push(s);
}

await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
for (const room of rooms) {
  const ref = state[0] && state[0][room];
  summary.last[room] = ref ? ref.seq : null;
  summary.lastValues[room] = ref ? ref.value : null;
  for (let i = 1; i < n; i++) {
    const mine = state[i] && state[i][room];
    if ((mine ? mine.value : null) !== (ref ? ref.value : null)) {
      summary.disagree += 1;
      if (summary.disagreeSample.length < 10) summary.disagreeSample.push({ client: i, room });
    }
  }
}
for (const s of sockets) s.close();
process.stdout.write(JSON.stringify(summary) + "\n");
process.exit(0);
