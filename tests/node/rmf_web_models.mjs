// rmf-web's models, as its dashboard receives them, written down as validators (plain JS, no
// dependency). Each model cites its schema in rmf-web's api-client,
// `packages/api-client/schema/index.ts` at commit a736ddeb (line of the `components.schemas`
// entry; /work/notes/rmf-web-contract.md lists them). The socket.io room payloads are the same
// models (index.ts L9 embeds their serialization view).
//
// What a validator checks:
// - required fields are present; values have the schema's type (integer vs number, enums,
//   integer ranges), and `null` only where the schema allows it;
// - the "same document" rule: rmf-web parses what RMF sends through its pydantic models and
//   sends the model again, so for the models it re-serializes (TaskState, FleetState/RobotState,
//   TaskRequest and every object nested in them: `same` below) EVERY field of the model is
//   present (an optional one as `null`) and no field outside the model is;
// - `additionalProperties: false` (TaskEventLog, Phases: `closed` below): no field outside the
//   model.
// Keys outside the model of the other (open) models are allowed by their schema; they are
// returned apart, as notes, not as errors.
//
// API: validate(model, value) -> ["<json path>: <message>", ...];
//      validateDetailed(model, value, path = "$") -> {errors, notes, seen} (`seen`: every model
//      the value contained, nested ones included).

// ---- types: a type is a function (value, path, ctx) that reports into ctx; `desc` names it ----

function show(v) {
  if (v === undefined) return "undefined";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function kindOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function at(path, key) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function type(desc, fn) {
  fn.desc = desc;
  return fn;
}

function scalar(desc, test) {
  return type(desc, (v, path, ctx) => {
    if (!test(v)) ctx.error(path, `expected ${desc}, got ${kindOf(v)} ${show(v)}`);
  });
}

const string = scalar("string", (v) => typeof v === "string");
const boolean = scalar("boolean", (v) => typeof v === "boolean");
const object = scalar("object", (v) => kindOf(v) === "object");
const any = type("any", () => {});

function ranged(desc, isType, min, max) {
  const bounds = min === undefined && max === undefined ? "" : ` [${min ?? "-inf"}, ${max ?? "inf"}]`;
  return type(desc + bounds, (v, path, ctx) => {
    if (!isType(v)) return ctx.error(path, `expected ${desc + bounds}, got ${kindOf(v)} ${show(v)}`);
    if ((min !== undefined && v < min) || (max !== undefined && v > max)) {
      ctx.error(path, `${v} out of range${bounds}`);
    }
  });
}

const integer = (min, max) => ranged("integer", Number.isInteger, min, max);
const number = (min, max) => ranged("number", (v) => typeof v === "number" && Number.isFinite(v), min, max);
const int32 = integer(-2147483648, 2147483647);
const uint32 = integer(0, 4294967295);
const uint8 = integer(0, 255);

function enumOf(name, values) {
  return type(name, (v, path, ctx) => {
    if (!values.includes(v)) ctx.error(path, `${show(v)} is not a ${name} (${values.join(", ")})`);
  });
}

function list(item) {
  return type(`${item.desc}[]`, (v, path, ctx) => {
    if (!Array.isArray(v)) return ctx.error(path, `expected ${item.desc}[], got ${kindOf(v)} ${show(v)}`);
    v.forEach((x, i) => check(item, x, `${path}[${i}]`, ctx));
  });
}

function record(item) {
  return type(`Record<string, ${item.desc}>`, (v, path, ctx) => {
    if (kindOf(v) !== "object") {
      return ctx.error(path, `expected Record<string, ${item.desc}>, got ${kindOf(v)} ${show(v)}`);
    }
    for (const [k, x] of Object.entries(v)) check(item, x, at(path, k), ctx);
  });
}

// One of several types (no model among them): the first that reports nothing.
function anyOf(...types) {
  const desc = types.map((t) => t.desc).join(" | ");
  return type(desc, (v, path, ctx) => {
    if (!types.some((t) => probe(t, v))) ctx.error(path, `expected ${desc}, got ${kindOf(v)} ${show(v)}`);
  });
}

function nullable(t) {
  const n = type(`${t.desc} | null`, (v, path, ctx) => check(t, v, path, ctx));
  n.nullable = true;
  return n;
}

// A date-time as pydantic writes it (ISO 8601 with a time zone or naive).
const dateTime = scalar(
  "string(date-time)",
  (v) => typeof v === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(v) && !Number.isNaN(Date.parse(v)),
);
const date = scalar("string(date)", (v) => typeof v === "string" && /^\d{4}-\d{2}-\d{2}$/.test(v));

// Applies `t` to `v`: `null` is an error unless `t` is nullable.
function check(t, v, path, ctx) {
  if (v === null && !t.nullable) return ctx.error(path, `null where ${t.desc} is required`);
  if (v === null) return;
  t(v, path, ctx);
}

function probe(t, v) {
  const ctx = context();
  check(t, v, "$", ctx);
  return ctx.errors.length === 0;
}

function context() {
  const ctx = { errors: [], notes: [], seen: new Set() };
  ctx.error = (path, message) => ctx.errors.push(`${path}: ${message}`);
  ctx.note = (path, message) => ctx.notes.push(`${path}: ${message}`);
  return ctx;
}

// ---- models ----

const REQ = true;
const OPT = false;

// A field list [[name, type, REQ|OPT], ...]. An optional field is nullable in every one of these
// schemas (anyOf [..., {type: null}], default null); a required one only when its type says so.
// `same`: rmf-web sends every field (optional ones as null) and no other; `closed`: no other.
function model(name, fields, { same = false, closed = false } = {}) {
  const spec = fields.map(([field, t, required]) => [field, required ? t : nullable(t), required]);
  const names = new Set(fields.map(([field]) => field));
  return type(name, (v, path, ctx) => {
    if (kindOf(v) !== "object") return ctx.error(path, `expected ${name} (object), got ${kindOf(v)} ${show(v)}`);
    ctx.seen.add(name);
    for (const [field, t, required] of spec) {
      const p = at(path, field);
      if (!(field in v)) {
        if (required) ctx.error(p, `required field of ${name} missing`);
        else if (same) ctx.error(p, `field of ${name} missing (rmf-web sends it, null when unset)`);
        continue;
      }
      check(t, v[field], p, ctx);
    }
    for (const key of Object.keys(v)) {
      if (names.has(key)) continue;
      if (same || closed) ctx.error(at(path, key), `not a field of ${name}`);
      else ctx.note(at(path, key), `not a field of ${name}`);
    }
  });
}

const SAME = { same: true };
const CLOSED = { closed: true };

// api_server__models__rmf_api__task_state__Status (L4554; Status-Input L3821).
const TaskStatus = enumOf("task Status", [
  "uninitialized", "blocked", "error", "failed", "queued", "standby", "underway", "delayed",
  "skipped", "canceled", "killed", "completed",
]);
// Status2 (L3839).
const DispatchStatus = enumOf("Status2", ["queued", "selected", "dispatched", "failed_to_assign", "canceled_in_flight"]);
// Detail (L2755): object | array | string.
const Detail = anyOf(object, list(any), string);
// EstimateMillis (L2894), Id (L3066): integer >= 0.
const EstimateMillis = integer(0);
const Id = integer(0);
const Labels = list(string);

// Booking (L2599).
const Booking = model("Booking", [
  ["id", string, REQ],
  ["unix_millis_earliest_start_time", integer(), OPT],
  ["unix_millis_request_time", integer(), OPT],
  ["priority", anyOf(object, string), OPT],
  ["labels", Labels, OPT],
  ["requester", string, OPT],
], SAME);
// AssignedTo (L2567).
const AssignedTo = model("AssignedTo", [["group", string, REQ], ["name", string, REQ]], SAME);
// Assignment (L2576).
const Assignment = model("Assignment", [["fleet_name", string, OPT], ["expected_robot_name", string, OPT]], SAME);
// Error (L2873).
const Error_ = model("Error", [["code", integer(0), OPT], ["category", string, OPT], ["detail", string, OPT]], SAME);
// Dispatch (L2760).
const Dispatch = model("Dispatch", [
  ["status", DispatchStatus, REQ],
  ["assignment", Assignment, OPT],
  ["errors", list(Error_), OPT],
], SAME);
// EventState (EventState-Output L2924).
const EventState = model("EventState", [
  ["id", Id, REQ],
  ["status", TaskStatus, OPT],
  ["name", string, OPT],
  ["detail", Detail, OPT],
  ["deps", list(integer(0)), OPT],
], SAME);
// Undo (L4441).
const Undo = model("Undo", [["unix_millis_request_time", integer(), REQ], ["labels", Labels, REQ]], SAME);
// SkipPhaseRequest (L3793).
const SkipPhaseRequest = model("SkipPhaseRequest", [
  ["unix_millis_request_time", integer(), REQ],
  ["labels", Labels, REQ],
  ["undo", Undo, OPT],
], SAME);
// Phase (Phase-Output L3418); category: api_server__models__rmf_api__task_state__Category (L4549).
const Phase = model("Phase", [
  ["id", Id, REQ],
  ["category", string, OPT],
  ["detail", Detail, OPT],
  ["unix_millis_start_time", integer(), OPT],
  ["unix_millis_finish_time", integer(), OPT],
  ["original_estimate_millis", EstimateMillis, OPT],
  ["estimate_millis", EstimateMillis, OPT],
  ["final_event_id", Id, OPT],
  ["events", record(EventState), OPT],
  ["skip_requests", record(SkipPhaseRequest), OPT],
], SAME);
// ResumedBy (L3590).
const ResumedBy = model("ResumedBy", [["unix_millis_request_time", integer(), OPT], ["labels", Labels, REQ]], SAME);
// Interruption (L3089).
const Interruption = model("Interruption", [
  ["unix_millis_request_time", integer(), REQ],
  ["labels", Labels, REQ],
  ["resumed_by", ResumedBy, OPT],
], SAME);
// Cancellation (L2666).
const Cancellation = model("Cancellation", [["unix_millis_request_time", integer(), REQ], ["labels", Labels, REQ]], SAME);
// Killed (L3134).
const Killed = model("Killed", [["unix_millis_request_time", integer(), REQ], ["labels", Labels, REQ]], SAME);
// TaskState (TaskState-Output L4301; TaskState-Input L4212).
const TaskState = model("TaskState", [
  ["booking", Booking, REQ],
  ["category", string, OPT],
  ["detail", Detail, OPT],
  ["unix_millis_start_time", integer(), OPT],
  ["unix_millis_finish_time", integer(), OPT],
  ["original_estimate_millis", EstimateMillis, OPT],
  ["estimate_millis", EstimateMillis, OPT],
  ["assigned_to", AssignedTo, OPT],
  ["status", TaskStatus, OPT],
  ["dispatch", Dispatch, OPT],
  ["phases", record(Phase), OPT],
  ["completed", list(Id), OPT],
  ["active", Id, OPT],
  ["pending", list(Id), OPT],
  ["interruptions", record(Interruption), OPT],
  ["cancellation", Cancellation, OPT],
  ["killed", Killed, OPT],
], SAME);

// TaskRequest (L4099): priority is an object only (Booking's may also be a string).
const TaskRequest = model("TaskRequest", [
  ["unix_millis_earliest_start_time", integer(), OPT],
  ["unix_millis_request_time", integer(), OPT],
  ["priority", object, OPT],
  ["category", string, REQ],
  ["description", nullable(any), REQ],
  ["labels", Labels, OPT],
  ["requester", string, OPT],
  ["fleet_name", string, OPT],
], SAME);

// TaskDispatchResponse (-Output L3916) = TaskDispatchResponse1-Output (L3933) |
// TaskDispatchResponse2 (L3942), told apart by `success`.
const TaskDispatchResponse1 = model("TaskDispatchResponse1", [
  ["success", enumOf("true", [true]), REQ],
  ["state", TaskState, REQ],
]);
const TaskDispatchResponse2 = model("TaskDispatchResponse2", [
  ["success", enumOf("false", [false]), OPT],
  ["errors", list(Error_), OPT],
]);
const TaskDispatchResponse = type("TaskDispatchResponse", (v, path, ctx) => {
  const branch = kindOf(v) === "object" && v.success === true ? TaskDispatchResponse1 : TaskDispatchResponse2;
  check(branch, v, path, ctx);
});

// api_server__models__rmf_api__robot_state__Status (L4544).
const RobotStatus = enumOf("robot Status", ["uninitialized", "offline", "shutdown", "idle", "charging", "working", "error"]);
// Location2D (L3263).
const Location2D = model("Location2D", [
  ["map", string, REQ],
  ["x", number(), REQ],
  ["y", number(), REQ],
  ["yaw", number(), REQ],
], SAME);
// Issue (L3113).
const Issue = model("Issue", [["category", string, OPT], ["detail", anyOf(object, list(any), string), OPT]], SAME);
// Commission (L2685).
const Commission = model("Commission", [
  ["dispatch_tasks", boolean, OPT],
  ["direct_tasks", boolean, OPT],
  ["idle_behavior", boolean, OPT],
], SAME);
// MutexGroups (L3295).
const MutexGroups = model("MutexGroups", [["locked", list(string), OPT], ["requesting", list(string), OPT]], SAME);
// RobotState (L3633).
const RobotState = model("RobotState", [
  ["name", string, OPT],
  ["status", RobotStatus, OPT],
  ["task_id", string, OPT],
  ["unix_millis_time", integer(), OPT],
  ["location", Location2D, OPT],
  ["battery", number(0, 1), OPT],
  ["issues", list(Issue), OPT],
  ["commission", Commission, OPT],
  ["mutex_groups", MutexGroups, OPT],
], SAME);
// FleetState (L2999).
const FleetState = model("FleetState", [["name", string, OPT], ["robots", record(RobotState), OPT]], SAME);

// api_server__models__rmf_api__log_entry__Tier (L4539).
const LogTier = enumOf("log Tier", ["uninitialized", "info", "warning", "error"]);
// LogEntry (L3274).
const LogEntry = model("LogEntry", [
  ["seq", integer(0, 4294967295), REQ],
  ["tier", LogTier, REQ],
  ["unix_millis_time", integer(), REQ],
  ["text", string, REQ],
]);
// FleetLog (L2969).
const FleetLog = model("FleetLog", [
  ["name", string, OPT],
  ["log", list(LogEntry), OPT],
  ["robots", record(list(LogEntry)), OPT],
]);
// Phases (L3471), additionalProperties: false.
const Phases = model("Phases", [["log", list(LogEntry), OPT], ["events", record(list(LogEntry)), OPT]], CLOSED);
// TaskEventLog (L3960), additionalProperties: false.
const TaskEventLog = model("TaskEventLog", [
  ["task_id", string, REQ],
  ["log", list(LogEntry), OPT],
  ["phases", record(Phases), OPT],
], CLOSED);

// AlertParameter (L2512).
const AlertParameter = model("AlertParameter", [["name", string, REQ], ["value", string, REQ]]);
// AlertRequest (L2521); tier: api_server__models__alerts__AlertRequest__Tier (L4524). Every
// field is required; task_id is required and nullable.
const AlertRequest = model("AlertRequest", [
  ["id", string, REQ],
  ["unix_millis_alert_time", integer(), REQ],
  ["title", string, REQ],
  ["subtitle", string, REQ],
  ["message", string, REQ],
  ["display", boolean, REQ],
  ["tier", enumOf("alert Tier", ["info", "warning", "error"]), REQ],
  ["responses_available", list(string), REQ],
  ["alert_parameters", list(AlertParameter), REQ],
  ["task_id", nullable(string), REQ],
]);
// AlertResponse (L2557).
const AlertResponse = model("AlertResponse", [
  ["id", string, REQ],
  ["unix_millis_response_time", integer(), REQ],
  ["response", string, REQ],
]);

// Time (L4395).
const Time = model("Time", [["sec", int32, REQ], ["nanosec", uint32, REQ]]);
// DoorMode (L2842).
const DoorMode = model("DoorMode", [["value", uint32, REQ]]);
// DoorState (L2863).
const DoorState = model("DoorState", [["door_time", Time, REQ], ["door_name", string, REQ], ["current_mode", DoorMode, REQ]]);
// Door (L2813).
const Door = model("Door", [
  ["name", string, REQ],
  ["v1_x", number(), REQ],
  ["v1_y", number(), REQ],
  ["v2_x", number(), REQ],
  ["v2_y", number(), REQ],
  ["door_type", uint8, REQ],
  ["motion_range", number(), REQ],
  ["motion_direction", int32, REQ],
]);
// LiftState (L3235).
const LiftState = model("LiftState", [
  ["lift_time", Time, REQ],
  ["lift_name", string, REQ],
  ["available_floors", list(string), REQ],
  ["current_floor", string, REQ],
  ["destination_floor", string, REQ],
  ["door_state", uint8, REQ],
  ["motion_state", uint8, REQ],
  ["available_modes", list(integer()), REQ],
  ["current_mode", uint8, REQ],
  ["session_id", string, REQ],
]);
// DispenserState (L2797) and IngestorState (L3073): the same fields.
const workcellState = (name) => model(name, [
  ["time", Time, REQ],
  ["guid", string, REQ],
  ["mode", int32, REQ],
  ["request_guid_queue", list(string), REQ],
  ["seconds_remaining", number(), REQ],
]);
const DispenserState = workcellState("DispenserState");
const IngestorState = workcellState("IngestorState");
// Dispenser (L2791), Ingestor (L3067).
const Dispenser = model("Dispenser", [["guid", string, REQ]]);
const Ingestor = model("Ingestor", [["guid", string, REQ]]);

// Param (L3322).
const Param = model("Param", [
  ["name", string, REQ],
  ["type", uint32, REQ],
  ["value_int", int32, REQ],
  ["value_float", number(), REQ],
  ["value_string", string, REQ],
  ["value_bool", boolean, REQ],
]);
// GraphNode (L3044).
const GraphNode = model("GraphNode", [["x", number(), REQ], ["y", number(), REQ], ["name", string, REQ], ["params", list(Param), REQ]]);
// GraphEdge (L3033).
const GraphEdge = model("GraphEdge", [
  ["v1_idx", uint32, REQ],
  ["v2_idx", uint32, REQ],
  ["params", list(Param), REQ],
  ["edge_type", uint8, REQ],
]);
// Graph (L3014).
const Graph = model("Graph", [
  ["name", string, REQ],
  ["vertices", list(GraphNode), REQ],
  ["edges", list(GraphEdge), REQ],
  ["params", list(Param), REQ],
]);
// Lift (L3181).
const Lift = model("Lift", [
  ["name", string, REQ],
  ["levels", list(string), REQ],
  ["doors", list(Door), REQ],
  ["wall_graph", Graph, REQ],
  ["ref_x", number(), REQ],
  ["ref_y", number(), REQ],
  ["ref_yaw", number(), REQ],
  ["width", number(), REQ],
  ["depth", number(), REQ],
]);
// AffineImage (L2498): `data` is the image's URL (a string), not its bytes.
const AffineImage = model("AffineImage", [
  ["name", string, REQ],
  ["x_offset", number(), REQ],
  ["y_offset", number(), REQ],
  ["yaw", number(), REQ],
  ["scale", number(), REQ],
  ["encoding", string, REQ],
  ["data", string, REQ],
]);
// Place (L3501).
const Place = model("Place", [
  ["name", string, REQ],
  ["x", number(), REQ],
  ["y", number(), REQ],
  ["yaw", number(), REQ],
  ["position_tolerance", number(), REQ],
  ["yaw_tolerance", number(), REQ],
]);
// Level (L3159).
const Level = model("Level", [
  ["name", string, REQ],
  ["elevation", number(), REQ],
  ["images", list(AffineImage), REQ],
  ["places", list(Place), REQ],
  ["doors", list(Door), REQ],
  ["nav_graphs", list(Graph), REQ],
  ["wall_graph", Graph, REQ],
]);
// BuildingMap (L2631).
const BuildingMap = model("BuildingMap", [["name", string, REQ], ["levels", list(Level), REQ], ["lifts", list(Lift), REQ]]);
// FireAlarmTriggerState (L2960).
const FireAlarmTriggerState = model("FireAlarmTriggerState", [["unix_millis_time", integer(), REQ], ["trigger", boolean, REQ]]);
// BeaconState (L2587).
const BeaconState = model("BeaconState", [
  ["id", string, REQ],
  ["online", boolean, REQ],
  ["category", string, REQ],
  ["activated", boolean, REQ],
  ["level", string, REQ],
]);

// User (L4500).
const User = model("User", [["username", string, REQ], ["is_admin", boolean, REQ], ["roles", list(string), REQ]]);
// Permission (L3356).
const Permission = model("Permission", [["authz_grp", string, REQ], ["action", string, REQ]]);
// TaskFavorite (L3985): all 8 fields required; priority and description may be null.
const TaskFavorite = model("TaskFavorite", [
  ["id", string, REQ],
  ["name", string, REQ],
  ["unix_millis_earliest_start_time", integer(), REQ],
  ["priority", nullable(object), REQ],
  ["category", string, REQ],
  ["description", nullable(object), REQ],
  ["user", string, REQ],
  ["task_definition_id", string, REQ],
]);
// Period (L3340).
const Period = enumOf("Period", ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "day", "hour", "minute"]);
// ScheduledTaskSchedule-Output (L3754): `every` required and nullable.
const ScheduledTaskSchedule = model("ScheduledTaskSchedule", [
  ["every", nullable(integer()), REQ],
  ["period", Period, REQ],
  ["at", string, REQ],
]);
// ScheduledTask (L3702): every field required (serialization view).
const ScheduledTask = model("ScheduledTask", [
  ["id", integer(), REQ],
  ["task_request", TaskRequest, REQ],
  ["created_by", string, REQ],
  ["schedules", list(ScheduledTaskSchedule), REQ],
  ["last_ran", nullable(dateTime), REQ],
  ["start_from", nullable(dateTime), REQ],
  ["until", nullable(dateTime), REQ],
  ["except_dates", list(date), REQ],
]);

export const MODELS = {
  TaskState, Booking, AssignedTo, Dispatch, Assignment, Error: Error_, Phase, EventState,
  SkipPhaseRequest, Undo, Interruption, ResumedBy, Cancellation, Killed,
  TaskRequest, TaskDispatchResponse,
  FleetState, RobotState, Location2D, Issue, Commission, MutexGroups,
  AlertRequest, AlertParameter, AlertResponse,
  DoorState, Time, DoorMode, Door, LiftState, Lift,
  DispenserState, IngestorState, Dispenser, Ingestor,
  BuildingMap, Level, AffineImage, Place, Graph, GraphNode, GraphEdge, Param,
  FireAlarmTriggerState, FleetLog, LogEntry, TaskEventLog, Phases, BeaconState,
  User, Permission, TaskFavorite, ScheduledTask, ScheduledTaskSchedule,
};

export function validateDetailed(name, value, path = "$") {
  const t = MODELS[name];
  if (!t) throw new Error(`unknown model ${name}`);
  const ctx = context();
  check(t, value, path, ctx);
  return { errors: ctx.errors, notes: ctx.notes, seen: ctx.seen };
}

export function validate(name, value) {
  return validateDetailed(name, value).errors;
}
