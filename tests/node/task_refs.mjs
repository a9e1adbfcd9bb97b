// Follows every task id a fleet room names, as the rmf-web dashboard's robots table does: a
// socket.io client (socket.io-client 4.x) subscribes to `/fleets/{name}/state` of each fleet
// (`GET /fleets`, read twice a second) and,
// the moment a robot's `task_id` is new, reads `GET /tasks?task_id=<id>` and
// `GET /tasks/<id>/state` from the same server. A reference the routes cannot answer yet is a
// miss (DESIGN.md invariant 9). Prints one JSON summary: {named, checked, missing: [{id, why}]}.
//
// usage: node task_refs.mjs URL TOKEN SECONDS
//   TOKEN "-" = no authentication.
import { io } from "socket.io-client";

const [url, token, seconds] = process.argv.slice(2);
const headers = token === "-" ? {} : { Authorization: `Bearer ${token}` };
const summary = { named: 0, checked: 0, missing: [], events: 0, connectErrors: 0 };
const seen = new Set();
const pending = new Set();

async function check(id) {
  const why = [];
  try {
    const r = await fetch(`${url}/tasks?task_id=${encodeURIComponent(id)}`, { headers });
    const body = await r.json();
    const ids = Array.isArray(body) ? body.map((t) => t && t.booking && t.booking.id) : [];
    if (r.status !== 200 || ids.length !== 1 || ids[0] !== id) {
      why.push(`GET /tasks?task_id= answered ${r.status} ${JSON.stringify(ids)}`);
    }
    const s = await fetch(`${url}/tasks/${encodeURIComponent(id)}/state`, { headers });
    if (s.status !== 200) why.push(`GET /tasks/{id}/state answered ${s.status}`);
  } catch (e) {
    why.push(String(e));
  }
  summary.checked += 1;
  if (why.length) summary.missing.push({ id, why });
}

const opts = { transports: ["websocket"], reconnection: false, timeout: 10000 };
if (token !== "-") opts.auth = { token };
const socket = io(url, opts);
const fleets = new Set();
socket.on("connect_error", () => { summary.connectErrors += 1; });

function follow(fleet) {
  if (fleets.has(fleet)) return;
  fleets.add(fleet);
  const room = `/fleets/${fleet}/state`;
  socket.on(room, (state) => {
    summary.events += 1;
    for (const robot of Object.values((state && state.robots) || {})) {
      const id = robot && robot.task_id;
      if (typeof id !== "string" || id === "" || seen.has(id)) continue;
      seen.add(id);
      summary.named += 1;
      const p = check(id);
      pending.add(p);
      p.finally(() => pending.delete(p));
    }
  });
  socket.emit("subscribe", { room });
}

const discover = setInterval(async () => {
  try {
    const r = await fetch(`${url}/fleets`, { headers });
    if (r.status === 200) for (const f of await r.json()) if (f && f.name) follow(f.name);
  } catch (e) {
    summary.discoverErrors = String(e);
  }
}, 500);

setTimeout(async () => {
  clearInterval(discover);
  summary.fleets = fleets.size;
  socket.close();
  await Promise.all([...pending]);
  console.log(JSON.stringify(summary));
  process.exit(0);
}, Number(seconds) * 1000);
