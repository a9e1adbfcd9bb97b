// The wire contract of rmf-web's api-server, checked on everything a dashboard receives from
// rmf-dash: every socket.io room of COMPAT.md that has a model and the REST answers the dashboard
// (and its generated api-client) reads, each validated against rmf-web's model
// (rmf_web_models.mjs).
//
// - socket.io-client 4.x with `auth: {token}`; each room is subscribed with `subscribe`
//   `{room}` (acknowledged by rmf-dash, which rmf-web never does), and every event's payload (its
//   first argument) is validated.
// - Entities are discovered over REST (`/fleets`, `/doors`, `/lifts`, `/dispensers`,
//   `/ingestors`, `/building_map`, `/tasks?limit=1000`) once a second; each new one gets its
//   rooms and REST reads.
// - It also acts as the dashboard's user and as RMF: it dispatches a patrol task
//   (`POST /tasks/dispatch_task`, answered by the server's loopback RMF link), posts and answers
//   alerts, resets the fire alarm, saves a favorite task and a scheduled task, and pushes, as a
//   fleet adapter on `/_internal`, a sparse task state, fleet state and logs (optional fields
//   left out, keys outside the models added): rmf-web would send them back with every field of
//   its model and without the others.
//
// Prints one JSON summary: {events: {model: n}, answers: {model: n}, seen: [models met, nested
// ones included], rooms, violationCount, violations: [{model, source, path, message, count}]
// (at most 50), notes: [keys outside an open model], late: [reads that answered 404 for a while
// after the command that made their entity], errors: [what went wrong on the way]}.
//
// usage: node contract.mjs URL TOKEN SECONDS [INTERNAL_TOKEN]
//   TOKEN: a JWT of the server's admin (it gives itself a role with a permission, so that
//   `/permissions` has one to show); INTERNAL_TOKEN: the server's `--internal-token`, if any.
//        node contract.mjs --self-test   (the validators on known-bad documents)
import { io } from "socket.io-client";
import { validate, validateDetailed } from "./rmf_web_models.mjs";

if (process.argv[2] === "--self-test") {
  selfTest();
  process.exit(0);
}

// A TaskState missing `cancellation` and a FleetState whose robot has a field RobotState lacks:
// both must be reported.
function selfTest() {
  const task = {
    booking: { id: "t1", unix_millis_earliest_start_time: null, unix_millis_request_time: null, priority: null, labels: ["a=b"], requester: null },
    category: null, detail: null, unix_millis_start_time: null, unix_millis_finish_time: null,
    original_estimate_millis: null, estimate_millis: null, assigned_to: null, status: "underway",
    dispatch: null, phases: null, completed: null, active: null, pending: null, interruptions: null,
    killed: null,
  };
  const robot = { name: "r1", status: "idle", task_id: "", unix_millis_time: 1, location: null, battery: 0.5, issues: [], commission: null, mutex_groups: null };
  const fleet = { name: "f1", robots: { r1: { ...robot, performing_action: "x" } } };
  console.log(JSON.stringify({
    taskState: validate("TaskState", task),
    taskStateComplete: validate("TaskState", { ...task, cancellation: null }),
    fleetState: validate("FleetState", fleet),
    fleetStateComplete: validate("FleetState", { name: "f1", robots: { r1: robot } }),
  }));
}

const [url, token, seconds, internalToken] = process.argv.slice(2);
const deadline = Date.now() + Number(seconds) * 1000;
const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };

const events = {};
const answers = {};
const seen = new Set();
const violations = new Map();
const notes = new Map();
const errors = [];
let violationCount = 0;

function bump(counts, model) {
  counts[model] = (counts[model] ?? 0) + 1;
}

function split(line) {
  const i = line.indexOf(": ");
  return [line.slice(0, i), line.slice(i + 2)];
}

function record(counts, model, value, source, path = "$") {
  const r = validateDetailed(model, value, path);
  bump(counts, model);
  for (const m of r.seen) seen.add(m);
  for (const e of r.errors) {
    violationCount += 1;
    const [p, message] = split(e);
    const key = JSON.stringify([model, source, p, message]);
    const v = violations.get(key);
    if (v) v.count += 1;
    else violations.set(key, { model, source, path: p, message, count: 1 });
  }
  for (const n of r.notes) {
    const [p, message] = split(n);
    const key = JSON.stringify([model, p.replace(/\[\d+\]/g, "[]"), message]);
    if (!notes.has(key)) notes.set(key, { model, source, path: p, message });
  }
}

// ---- REST ----

async function call(method, path, body) {
  try {
    const r = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text };
  } catch (e) {
    errors.push(`${method} ${path}: ${e}`);
    return { status: 0 };
  }
}

// `method path` must answer one of `ok` statuses; a 2xx answer is validated as `model` (or a
// list of `model` with `list`). The JSON answer (undefined otherwise).
async function answer(method, path, model, { body, list = false, ok = [200] } = {}) {
  const r = await call(method, path, body);
  if (r.status === 0) return undefined;
  if (!ok.includes(r.status)) {
    errors.push(`${method} ${path}: status ${r.status} ${String(r.text).slice(0, 200)}`);
    return undefined;
  }
  if (r.status < 200 || r.status > 299) return undefined;
  if (r.json === undefined) {
    errors.push(`${method} ${path}: not JSON: ${String(r.text).slice(0, 200)}`);
    return undefined;
  }
  const source = `${method} ${path}`;
  if (!list) {
    record(answers, model, r.json, source);
  } else if (!Array.isArray(r.json)) {
    record(answers, model, undefined, source);
    violationCount += 1;
    violations.set(JSON.stringify([model, source]), { model, source, path: "$", message: `expected ${model}[], got ${typeof r.json}`, count: 1 });
  } else {
    r.json.forEach((item, i) => record(answers, model, item, source, `$[${i}]`));
  }
  return r.json;
}

const get = (path, model, opts) => answer("GET", path, model, opts);

// A read of what a command just made: rmf-dash shows it once its engine has taken it, so a 404
// is retried (every 100 ms, at most 5 s); how long it took is reported in `late`.
const late = [];
async function eventually(path, model, what) {
  const start = Date.now();
  let r = await call("GET", path);
  let retried = false;
  while (r.status === 404 && Date.now() - start < 5000) {
    retried = true;
    await new Promise((ok) => setTimeout(ok, 100));
    r = await call("GET", path);
  }
  if (retried) late.push(`GET ${path} after ${what}: 404 for about ${Date.now() - start} ms`);
  return get(path, model);
}
const enc = encodeURIComponent;

// ---- socket.io ----

const socket = io(url, { transports: ["websocket"], reconnection: false, timeout: 10000, auth: { token } });
const rooms = new Set();
socket.on("connect_error", (e) => errors.push(`connect_error: ${e.message}`));
socket.on("subscribe_error", (b) => errors.push(`subscribe_error: ${JSON.stringify(b)}`));
socket.on("disconnect", (why) => {
  if (Date.now() < deadline) errors.push(`disconnected: ${why}`);
});

async function subscribe(room, model) {
  if (rooms.has(room)) return;
  rooms.add(room);
  socket.on(room, (payload) => record(events, model, payload, `room ${room}`));
  try {
    const ack = await socket.timeout(10000).emitWithAck("subscribe", { room });
    if (!ack || ack.room !== room) errors.push(`subscribe ${room}: acknowledged ${JSON.stringify(ack)}`);
  } catch (e) {
    errors.push(`subscribe ${room}: ${e.message}`);
  }
}

await new Promise((ok) => {
  socket.on("connect", ok);
  setTimeout(ok, 10000);
});
if (!socket.connected) errors.push("socket.io did not connect");

// ---- discovery ----

const known = new Set();
const once = (key) => !known.has(key) && known.add(key);

async function discover() {
  for (const fleet of (await get("/fleets", "FleetState", { list: true })) ?? []) {
    const name = fleet && fleet.name;
    if (typeof name !== "string" || !once(`fleet ${name}`)) continue;
    await subscribe(`/fleets/${name}/state`, "FleetState");
    await subscribe(`/fleets/${name}/log`, "FleetLog");
    await fleetReads(name);
  }
  for (const task of (await get("/tasks?limit=1000", "TaskState", { list: true })) ?? []) {
    const id = task && task.booking && task.booking.id;
    if (typeof id !== "string" || !once(`task ${id}`)) continue;
    await followTask(id);
  }
}

async function fleetReads(name) {
  await get(`/fleets/${enc(name)}/state`, "FleetState");
  // rmf-web answers 404 for a fleet with no log yet.
  await get(`/fleets/${enc(name)}/log`, "FleetLog", { ok: [200, 404] });
}

async function followTask(id) {
  await subscribe(`/tasks/${id}/state`, "TaskState");
  await subscribe(`/tasks/${id}/log`, "TaskEventLog");
  await taskReads(id);
}

async function taskReads(id) {
  await get(`/tasks/${enc(id)}/state`, "TaskState");
  // rmf-web answers 404 for a task with no log yet.
  await get(`/tasks/${enc(id)}/log`, "TaskEventLog", { ok: [200, 404] });
}

const doors = [];
const lifts = [];
const workcells = [];

// A device listed from the building map has no state until it first publishes one (404, as in
// rmf-web): its state is read once it has one (at most 5 s; the wait is reported in `late`), so
// that a replay slowed by a loaded machine is not taken for a missing answer.
async function buildingReads() {
  await get("/building_map", "BuildingMap");
  const first = "its first state";
  for (const d of doors) await eventually(`/doors/${enc(d)}/state`, "DoorState", first);
  for (const l of lifts) await eventually(`/lifts/${enc(l)}/state`, "LiftState", first);
  for (const [kind, guid, model] of workcells) await eventually(`/${kind}/${enc(guid)}/state`, model, first);
}

async function discoverBuilding() {
  await subscribe("/building_map", "BuildingMap");
  for (const d of (await get("/doors", "Door", { list: true })) ?? []) {
    if (typeof d?.name !== "string") continue;
    doors.push(d.name);
    await subscribe(`/doors/${d.name}/state`, "DoorState");
  }
  for (const l of (await get("/lifts", "Lift", { list: true })) ?? []) {
    if (typeof l?.name !== "string") continue;
    lifts.push(l.name);
    await subscribe(`/lifts/${l.name}/state`, "LiftState");
  }
  for (const [kind, model, state] of [["dispensers", "Dispenser", "DispenserState"], ["ingestors", "Ingestor", "IngestorState"]]) {
    for (const w of (await get(`/${kind}`, model, { list: true })) ?? []) {
      if (typeof w?.guid !== "string") continue;
      workcells.push([kind, w.guid, state]);
      await subscribe(`/${kind}/${w.guid}/state`, state);
    }
  }
  await buildingReads();
}

// ---- RMF, as a fleet adapter on /_internal: sparse documents, keys outside the models ----

const SPARSE_TASK = "contract.sparse";
const SPARSE_FLEET = "contract_fleet";

async function adapter(now) {
  const WebSocket = globalThis.WebSocket ?? (await import("ws")).WebSocket;
  const wsUrl = `${url.replace(/^http/, "ws")}/_internal${internalToken ? `?token=${enc(internalToken)}` : ""}`;
  const ws = new WebSocket(wsUrl);
  const opened = await new Promise((ok) => {
    ws.onopen = () => ok(true);
    ws.onerror = () => ok(false);
    setTimeout(() => ok(false), 10000);
  });
  if (!opened) return errors.push(`/_internal: no connection to ${wsUrl}`);
  const entry = (seq, tier, text) => ({ seq, tier, unix_millis_time: now, text });
  const frames = [
    ["task_state_update", {
      booking: { id: SPARSE_TASK, labels: ["contract=sparse"], not_in_booking: 1 },
      category: "patrol",
      status: "canceled",
      not_in_task_state: true,
      assigned_to: { group: SPARSE_FLEET, name: "contract_robot" },
      dispatch: { status: "dispatched", assignment: { fleet_name: SPARSE_FLEET }, errors: [{ code: 3, detail: "retried" }] },
      phases: {
        1: {
          id: 1,
          events: { 0: { id: 0, not_in_event: 2 } },
          skip_requests: { "skip-1": { unix_millis_request_time: now, labels: ["skip"], undo: { unix_millis_request_time: now, labels: ["undo"] } } },
        },
      },
      completed: [],
      pending: [1],
      interruptions: { "pause-1": { unix_millis_request_time: now, labels: ["pause"], resumed_by: { labels: ["resume"] } } },
      cancellation: { unix_millis_request_time: now, labels: ["cancel"] },
      killed: { unix_millis_request_time: now, labels: ["kill"] },
    }],
    ["fleet_state_update", {
      name: SPARSE_FLEET,
      robots: {
        contract_robot: {
          name: "contract_robot",
          status: "working",
          task_id: SPARSE_TASK,
          battery: 0.5,
          location: { map: "L1", x: 1, y: 2.5, yaw: 0 },
          issues: [{ category: "blocked" }],
          commission: { dispatch_tasks: true },
          mutex_groups: { locked: ["corridor"] },
          not_in_robot_state: 1,
        },
      },
    }],
    ["task_log_update", {
      task_id: SPARSE_TASK,
      log: [entry(0, "info", "task log")],
      phases: { 1: { log: [entry(0, "warning", "phase log")], events: { 0: [entry(0, "error", "event log")] } } },
    }],
    ["fleet_log_update", { name: SPARSE_FLEET, log: [entry(0, "info", "fleet log")], robots: { contract_robot: [entry(0, "info", "robot log")] } }],
  ];
  for (const [type, data] of frames) ws.send(JSON.stringify({ type, data }));
  // Let the frames reach the server before the connection goes.
  await new Promise((ok) => setTimeout(ok, 500));
  ws.close();
}

// ---- the dashboard's user ----

async function dispatch() {
  const request = { type: "dispatch_task_request", request: { category: "patrol", description: { places: ["a"], rounds: 1 } } };
  const r = await answer("POST", "/tasks/dispatch_task", "TaskDispatchResponse", { body: request });
  const id = r?.state?.booking?.id;
  if (typeof id !== "string") return errors.push(`POST /tasks/dispatch_task: no task id in ${JSON.stringify(r)}`);
  known.add(`task ${id}`);
  await eventually(`/tasks/${enc(id)}/state`, "TaskState", "POST /tasks/dispatch_task");
  await followTask(id);
  await get(`/tasks/${enc(id)}/request`, "TaskRequest");
  await get(`/tasks?task_id=${enc(id)}`, "TaskState", { list: true });
}

function alert(id, taskId, responses) {
  return {
    id, unix_millis_alert_time: Date.now(), title: "contract", subtitle: "check", message: "a contract alert",
    display: true, tier: "warning", responses_available: responses,
    alert_parameters: [{ name: "p", value: "v" }], task_id: taskId,
  };
}

async function alerts() {
  const answered = "contract-answered";
  const open = "contract-open";
  await answer("POST", "/alerts/request", "AlertRequest", { body: alert(answered, null, ["ok"]), ok: [201] });
  await answer("POST", "/alerts/request", "AlertRequest", { body: alert(open, SPARSE_TASK, ["ok", "retry"]), ok: [201] });
  await get(`/alerts/request/${answered}`, "AlertRequest");
  await get(`/alerts/requests/task/${enc(SPARSE_TASK)}`, "AlertRequest", { list: true });
  await get("/alerts/unresponded_requests", "AlertRequest", { list: true });
  await answer("POST", `/alerts/request/${answered}/respond?response=ok`, "AlertResponse", { ok: [201] });
  await get(`/alerts/request/${answered}/response`, "AlertResponse");
}

// The run's user is an admin (`serve --admin-user`): it gives itself a role with a permission,
// so that `/permissions` has one to show.
async function userData() {
  const me = await get("/user", "User");
  const role = "contract_role";
  const permission = { authz_grp: "contract_group", action: "task_read" };
  await call("POST", "/admin/roles", { name: role });
  await call("POST", `/admin/roles/${role}/permissions`, permission);
  if (typeof me?.username === "string") {
    await call("POST", `/admin/users/${enc(me.username)}/roles`, { name: role });
    await get(`/admin/users/${enc(me.username)}`, "User");
  }
  await get(`/admin/roles/${role}/permissions`, "Permission", { list: true });
  await get("/permissions", "Permission", { list: true });
  const favorite = {
    id: "", name: "contract", unix_millis_earliest_start_time: 0, priority: null, category: "patrol",
    description: { places: ["a"], rounds: 1 }, user: "", task_definition_id: "patrol",
  };
  await call("POST", "/favorite_tasks", favorite);
  await get("/favorite_tasks", "TaskFavorite", { list: true });
  const scheduled = {
    task_request: { category: "patrol", description: { places: ["a"], rounds: 1 } },
    schedules: [{ every: null, period: "monday", at: "09:00" }],
    start_from: "2099-01-01T00:00:00Z", until: null, except_dates: [],
  };
  const s = await answer("POST", "/scheduled_tasks", "ScheduledTask", { body: scheduled, ok: [201] });
  if (Number.isInteger(s?.id)) await get(`/scheduled_tasks/${s.id}`, "ScheduledTask");
  await get("/scheduled_tasks?start_before=2100-01-01T00:00:00Z&until_after=2000-01-01T00:00:00Z", "ScheduledTask", { list: true });
}

async function building() {
  await answer("POST", "/building_map/reset_fire_alarm_trigger", "FireAlarmTriggerState");
  await eventually("/building_map/previous_fire_alarm_trigger", "FireAlarmTriggerState", "POST /building_map/reset_fire_alarm_trigger");
  for (const b of (await get("/beacons", "BeaconState", { list: true })) ?? []) {
    if (typeof b?.id === "string") await get(`/beacons/${enc(b.id)}`, "BeaconState");
  }
}

// ---- the run ----

for (const [room, model] of [
  ["/alerts/requests", "AlertRequest"],
  ["/alerts/responses", "AlertResponse"],
  ["/building_map/fire_alarm_trigger", "FireAlarmTriggerState"],
  ["/beacons", "BeaconState"],
  [`/tasks/${SPARSE_TASK}/state`, "TaskState"],
  [`/tasks/${SPARSE_TASK}/log`, "TaskEventLog"],
  [`/fleets/${SPARSE_FLEET}/state`, "FleetState"],
  [`/fleets/${SPARSE_FLEET}/log`, "FleetLog"],
]) {
  await subscribe(room, model);
}
known.add(`task ${SPARSE_TASK}`).add(`fleet ${SPARSE_FLEET}`);
await discoverBuilding();
await discover();
const time = await call("GET", "/time");
await adapter(Number.isInteger(time.json) ? time.json : Date.now());
await dispatch();
await alerts();
await userData();
await building();
while (Date.now() < deadline - 3000) {
  await new Promise((ok) => setTimeout(ok, 1000));
  await discover();
}
// Final reads: what every known entity ended with.
await buildingReads();
await get("/building_map/previous_fire_alarm_trigger", "FireAlarmTriggerState");
await fleetReads(SPARSE_FLEET);
await taskReads(SPARSE_TASK);
await get("/alerts/unresponded_requests", "AlertRequest", { list: true });
await new Promise((ok) => setTimeout(ok, Math.max(0, deadline - Date.now())));
socket.close();

const sorted = (o) => Object.fromEntries(Object.entries(o).sort());
console.log(JSON.stringify({
  events: sorted(events),
  answers: sorted(answers),
  seen: [...seen].sort(),
  rooms: rooms.size,
  violationCount,
  violations: [...violations.values()].slice(0, 50),
  notes: [...notes.values()].slice(0, 50),
  late,
  errors,
}));
process.exit(0);
