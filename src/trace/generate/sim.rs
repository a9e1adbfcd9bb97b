//! The simulation behind a generated trace: robots moving along the graph at walking speed, taking
//! tasks through their whole lifecycle, opening doors, riding lifts, using dispensers and
//! ingestors, draining and charging batteries; and the scenario injections. It advances in steps
//! of 100 ms and produces, per step, the messages RMF would publish (the caller orders and writes
//! them).
//!
//! The normal run is kept free of the situations the derived events look for (no door open for a
//! minute, no working robot standing still, batteries charged well above 20 %, every device
//! reporting), so that in a generated trace only the injected situations fire.

use std::collections::{BTreeMap, VecDeque};

use compact_str::{CompactString, format_compact};
use rmf_dash_dataflows::model::ros::*;
use serde_json::{Value, json};

use super::rng::Rng;
use super::scenario::{Injection, ScenarioKind};
use super::world::{Vertex, WorkcellKind, World};
use super::{SiteConfig, Topic};

/// Simulation step.
pub const STEP_MS: u64 = 100;
const DOOR_MOVE_MS: u64 = 2_000;
/// A door open this long stops admitting robots until it has closed once (keeps it well below
/// the 60 s held-open threshold in the normal run).
const DOOR_ADMIT_MS: u64 = 30_000;
const LIFT_FLOOR_MS: u64 = 3_000;
const LIFT_DOOR_MS: u64 = 2_000;
const CHARGE_BELOW: f64 = 0.35;
const CHARGED: f64 = 0.95;

/// One message produced by the simulation.
pub struct Emit {
    pub log_time: u64,
    pub topic: Topic,
    pub msg: Msg,
}

pub enum Msg {
    Door(DoorState),
    Lift(LiftState),
    Workcell(WorkcellState),
    Fleet(FleetState),
    Map(Box<BuildingMap>),
    /// A fleet-adapter JSON frame `{"type", "data"}` (also a websocket line).
    Json(String),
    /// Only in the websocket file (a resend after a reconnect).
    WsOnly(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DoorPhase {
    Closed,
    Opening(u64),
    Open(u64),
    Closing(u64),
}

struct DoorSim {
    phase: DoorPhase,
    requests: u32,
    admit: bool,
    held_until: Option<u64>,
    silent_until: Option<u64>,
    offset_ms: u64,
    last_pub_ns: u64,
    report: Option<usize>,
}

impl DoorSim {
    fn mode(&self) -> u32 {
        match self.phase {
            DoorPhase::Closed => DoorMode::MODE_CLOSED,
            DoorPhase::Opening(_) | DoorPhase::Closing(_) => DoorMode::MODE_MOVING,
            DoorPhase::Open(_) => DoorMode::MODE_OPEN,
        }
    }

    fn update(&mut self, now: u64) {
        let held = self.held_until.is_some_and(|u| now < u);
        let want = self.requests > 0 || held;
        self.phase = match self.phase {
            DoorPhase::Closed if want => DoorPhase::Opening(now + DOOR_MOVE_MS),
            DoorPhase::Opening(t) if now >= t => DoorPhase::Open(now),
            DoorPhase::Open(since) => {
                if !held && now.saturating_sub(since) > DOOR_ADMIT_MS {
                    self.admit = false;
                }
                if want {
                    DoorPhase::Open(since)
                } else {
                    DoorPhase::Closing(now + DOOR_MOVE_MS)
                }
            }
            DoorPhase::Closing(t) if now >= t => {
                self.admit = true;
                DoorPhase::Closed
            }
            p => p,
        };
    }
}

struct LiftSim {
    floor: usize,
    target: usize,
    door: DoorPhase,
    /// When the car reaches the next floor.
    moving_until: Option<u64>,
    /// Robot holding the lift (reserved before it walks to it).
    reserved: Option<usize>,
    session: Option<CompactString>,
    want_open: bool,
    fire_until: Option<u64>,
    silent_until: Option<u64>,
    offset_ms: u64,
    last: Option<(usize, usize, u8, u8, u8, CompactString)>,
    last_pub_ns: u64,
    report: Option<usize>,
}

impl LiftSim {
    fn door_state(&self) -> u8 {
        match self.door {
            DoorPhase::Closed => LiftState::DOOR_CLOSED,
            DoorPhase::Open(_) => LiftState::DOOR_OPEN,
            _ => LiftState::DOOR_MOVING,
        }
    }

    fn motion(&self) -> u8 {
        match (self.moving_until, self.target.cmp(&self.floor)) {
            (Some(_), std::cmp::Ordering::Greater) => LiftState::MOTION_UP,
            (Some(_), std::cmp::Ordering::Less) => LiftState::MOTION_DOWN,
            _ => LiftState::MOTION_STOPPED,
        }
    }

    fn mode(&self, now: u64) -> u8 {
        if self.fire_until.is_some_and(|u| now < u) {
            LiftState::MODE_FIRE
        } else if self.session.is_some() {
            LiftState::MODE_AGV
        } else {
            LiftState::MODE_HUMAN
        }
    }

    fn open_at(&self, floor: usize) -> bool {
        self.floor == floor && matches!(self.door, DoorPhase::Open(_))
    }

    fn update(&mut self, now: u64) {
        if let Some(t) = self.moving_until {
            if now >= t {
                self.floor = if self.target > self.floor {
                    self.floor + 1
                } else {
                    self.floor - 1
                };
                self.moving_until = (self.floor != self.target).then_some(now + LIFT_FLOOR_MS);
            }
            return;
        }
        if self.target != self.floor {
            self.door = match self.door {
                DoorPhase::Closed => {
                    self.moving_until = Some(now + LIFT_FLOOR_MS);
                    DoorPhase::Closed
                }
                DoorPhase::Open(_) => DoorPhase::Closing(now + LIFT_DOOR_MS),
                DoorPhase::Closing(t) | DoorPhase::Opening(t) if now >= t => DoorPhase::Closed,
                d => d,
            };
            return;
        }
        self.door = match self.door {
            DoorPhase::Closed if self.want_open => DoorPhase::Opening(now + LIFT_DOOR_MS),
            DoorPhase::Opening(t) if now >= t => DoorPhase::Open(now),
            DoorPhase::Open(_) if !self.want_open => DoorPhase::Closing(now + LIFT_DOOR_MS),
            DoorPhase::Closing(t) if now >= t => DoorPhase::Closed,
            d => d,
        };
    }
}

struct WorkcellSim {
    queue: Vec<CompactString>,
    busy_until: u64,
    offset_ms: u64,
    changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    Working,
    Charging,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Working => "working",
            Status::Charging => "charging",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Task phase `k` (1-based) starts; the previous one completes.
    Phase(u32),
    GoTo(Vertex),
    /// Wait in place (`workcell`: the dispenser/ingestor served meanwhile).
    Wait {
        ms: u64,
        mode: u32,
        action: &'static str,
        workcell: Option<usize>,
    },
    /// Ride a reserved lift to a level (the robot stands at the lift's vertex).
    Lift {
        lift: usize,
        to: u16,
    },
    Charge,
    EndTask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiftStage {
    Call,
    Enter(u64),
    Ride,
    Exit(u64),
}

struct RobotSim {
    fleet: usize,
    name: CompactString,
    at: Vertex,
    /// Metres travelled along the edge towards `path[0]`.
    along: f64,
    yaw: f64,
    path: VecDeque<Vertex>,
    steps: VecDeque<Step>,
    wait_until: Option<u64>,
    lift_stage: Option<LiftStage>,
    battery: f64,
    status: Status,
    mode: u32,
    action: &'static str,
    task: Option<usize>,
    queue: VecDeque<usize>,
    log_seq: u32,
    new_log: Vec<Value>,
    door: Option<usize>,
    lift: Option<usize>,
    speed: f64,
    /// Scenario overrides.
    frozen_until: Option<u64>,
    error_until: Option<u64>,
    /// Extra battery drain per second until the given time.
    drain: Option<(f64, u64)>,
    hold_low_until: Option<u64>,
    /// Injection whose details the next publications complete.
    report: Option<usize>,
}

impl RobotSim {
    fn xy(&self) -> (f64, f64) {
        let (x, y) = self.at.xy();
        match self.path.front() {
            Some(n) if self.along > 0.0 => {
                let (nx, ny) = n.xy();
                let f = (self.along / super::world::SPACING).min(1.0);
                (x + (nx - x) * f, y + (ny - y) * f)
            }
            _ => (x, y),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Complete,
    /// Fails after the given fraction of phase k.
    Fail(u32),
    Cancel(u32),
}

struct PhaseSim {
    category: String,
    detail: String,
    start: Option<u64>,
    finish: Option<u64>,
    estimate_ms: u64,
    status: &'static str,
}

struct TaskSim {
    id: String,
    category: &'static str,
    fleet: usize,
    robot: Option<usize>,
    request_ms: u64,
    start_ms: Option<u64>,
    finish_ms: Option<u64>,
    status: &'static str,
    dispatch_status: &'static str,
    dispatch_errors: Vec<Value>,
    phases: Vec<PhaseSim>,
    active: Option<u32>,
    outcome: Outcome,
    estimate_ms: u64,
    labels: Vec<String>,
    requester: String,
    detail: Value,
    cancellation: Option<Value>,
    /// When a failing or cancelled task ends (set as its fatal phase starts).
    doom_ms: Option<u64>,
    dirty: bool,
    next_pub: u64,
    finished: bool,
    log_seq: BTreeMap<u32, u32>,
    new_log: BTreeMap<u32, Vec<Value>>,
    all_log: BTreeMap<u32, Vec<Value>>,
}

struct FleetSim {
    robots: std::ops::Range<usize>,
    next_task_ms: u64,
    mean_gap_ms: f64,
    offset_ms: u64,
}

/// Scenario bookkeeping.
struct Planned {
    kind: ScenarioKind,
    at_ms: u64,
    started: Option<usize>,
}

pub struct Sim {
    pub world: World,
    cfg: SiteConfig,
    rng: Rng,
    pub now: u64,
    base_ns: u64,
    doors: Vec<DoorSim>,
    lifts: Vec<LiftSim>,
    workcells: Vec<WorkcellSim>,
    robots: Vec<RobotSim>,
    fleets: Vec<FleetSim>,
    tasks: Vec<TaskSim>,
    planned: Vec<Planned>,
    pub injections: Vec<Injection>,
    reconnected: bool,
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

impl Sim {
    pub fn new(cfg: &SiteConfig, base_ns: u64) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        let world = World::build(cfg, &mut rng);
        let doors = (0..world.doors.len())
            .map(|i| DoorSim {
                phase: DoorPhase::Closed,
                requests: 0,
                admit: true,
                held_until: None,
                silent_until: None,
                offset_ms: (i as u64 * 137) % 1000,
                last_pub_ns: 0,
                report: None,
            })
            .collect();
        let lifts = (0..world.lifts.len())
            .map(|i| LiftSim {
                floor: i % world.level_names.len(),
                target: i % world.level_names.len(),
                door: DoorPhase::Closed,
                moving_until: None,
                reserved: None,
                session: None,
                want_open: false,
                fire_until: None,
                silent_until: None,
                offset_ms: (i as u64 * 211 + 50) % 1000,
                last: None,
                last_pub_ns: 0,
                report: None,
            })
            .collect();
        let workcells = (0..world.workcells.len())
            .map(|i| WorkcellSim {
                queue: Vec::new(),
                busy_until: 0,
                offset_ms: (i as u64 * 173 + 20) % 2000,
                changed: false,
            })
            .collect();
        let mut robots = Vec::new();
        let mut fleets = Vec::new();
        for (f, fleet) in world.fleets.iter().enumerate() {
            let start = robots.len();
            for r in &fleet.robots {
                robots.push(RobotSim {
                    fleet: f,
                    name: r.name.clone(),
                    at: r.charger,
                    along: 0.0,
                    yaw: 0.0,
                    path: VecDeque::new(),
                    steps: VecDeque::new(),
                    wait_until: None,
                    lift_stage: None,
                    battery: rng.range_f64(0.6, 1.0),
                    status: Status::Idle,
                    mode: RobotMode::MODE_IDLE,
                    action: "",
                    task: None,
                    queue: VecDeque::new(),
                    log_seq: 0,
                    new_log: Vec::new(),
                    door: None,
                    lift: None,
                    speed: rng.range_f64(0.6, 1.0),
                    frozen_until: None,
                    error_until: None,
                    drain: None,
                    hold_low_until: None,
                    report: None,
                });
            }
            let n = fleet.robots.len().max(1) as f64;
            // About 60 % busy: a task is two legs of two thirds of the floor at ~0.8 m/s, plus
            // handling. The first task of every fleet comes within 5 s.
            let leg_ms = 0.67 * world.rows as f64 * super::world::SPACING / 0.8 * 1000.0;
            let mean_gap_ms = (2.0 * leg_ms + 10_000.0) / (0.6 * n);
            fleets.push(FleetSim {
                robots: start..robots.len(),
                next_task_ms: 1_000 + rng.below(4_000) as u64,
                mean_gap_ms,
                offset_ms: (f as u64 * 7 + 3) % STEP_MS,
            });
        }
        // Scenario start times: as given, or staggered from 30 s on.
        let mut auto = 30_000;
        let planned = cfg
            .scenarios
            .iter()
            .map(|s| {
                let at_ms = s.at_ms.unwrap_or_else(|| {
                    let t = auto;
                    auto += 20_000;
                    t
                });
                Planned {
                    kind: s.kind,
                    at_ms,
                    started: None,
                }
            })
            .collect();
        Sim {
            world,
            cfg: cfg.clone(),
            rng,
            now: 0,
            base_ns,
            doors,
            lifts,
            workcells,
            robots,
            fleets,
            tasks: Vec::new(),
            planned,
            injections: Vec::new(),
            reconnected: false,
        }
    }

    /// Publish time in ns of `ms` after the start.
    fn ns(&self, ms: u64) -> u64 {
        self.base_ns + ms * 1_000_000
    }

    fn stamp(&self, ms: u64) -> Time {
        Time::from_nanos(self.ns(ms))
    }

    fn unix_ms(&self, ms: u64) -> u64 {
        self.ns(ms) / 1_000_000
    }

    /// The message latency of a publication: receive (log) time minus publish time.
    fn latency_ns(&mut self) -> u64 {
        500_000 + self.rng.below(4_500_000) as u64
    }

    /// The map, published once at the start (transient local).
    pub fn map(&self) -> Emit {
        Emit {
            log_time: self.ns(0),
            topic: Topic::Map,
            msg: Msg::Map(Box::new(self.world.building_map())),
        }
    }

    /// Advances one step and returns what was published during it.
    pub fn step(&mut self) -> Vec<Emit> {
        let now = self.now;
        let mut out = Vec::new();
        self.scenarios(now);
        for d in &mut self.doors {
            d.update(now);
        }
        for l in &mut self.lifts {
            l.update(now);
        }
        for w in &mut self.workcells {
            if !w.queue.is_empty() && now >= w.busy_until {
                w.queue.clear();
                w.changed = true;
            }
        }
        self.dispatch(now);
        for r in 0..self.robots.len() {
            self.step_robot(r, now);
        }
        self.publish(now, &mut out);
        if !self.reconnected && self.cfg.ws_reconnect_ms.is_some_and(|t| now >= t) {
            self.reconnected = true;
            self.resend_task_logs(now, &mut out);
        }
        self.now += STEP_MS;
        out
    }

    // ---- tasks -------------------------------------------------------------------------------

    fn dispatch(&mut self, now: u64) {
        for f in 0..self.fleets.len() {
            while self.fleets[f].next_task_ms <= now {
                let gap = self.rng.exp(self.fleets[f].mean_gap_ms).round() as u64;
                self.fleets[f].next_task_ms += gap.max(200);
                self.new_task(f, now);
            }
        }
    }

    fn new_task(&mut self, f: usize, now: u64) {
        let categories = self.world.fleets[f].categories;
        let category = categories[self.rng.below(categories.len())];
        let id = format!("{category}.dispatch-{}", self.rng.hex(10));
        let roll = self.rng.f64();
        let robots = self.fleets[f].robots.clone();
        let robot = robots
            .clone()
            .filter(|&r| self.robots[r].error_until.is_none())
            .min_by_key(|&r| {
                (
                    self.robots[r].queue.len() + self.robots[r].task.is_some() as usize,
                    r,
                )
            });
        let phases = 2 + self.rng.below(2) as u32;
        let outcome = if roll < 0.03 {
            Outcome::Fail(1 + self.rng.below(phases as usize) as u32)
        } else if roll < 0.05 {
            Outcome::Cancel(1 + self.rng.below(phases as usize) as u32)
        } else {
            Outcome::Complete
        };
        let failed_to_assign = roll > 0.99 || robot.is_none();
        let requester = format!("operator_{}", 1 + self.rng.below(5));
        let t = self.tasks.len();
        let mut task = TaskSim {
            id,
            category,
            fleet: f,
            robot: None,
            request_ms: now,
            start_ms: None,
            finish_ms: None,
            status: "queued",
            dispatch_status: "dispatched",
            dispatch_errors: Vec::new(),
            phases: Vec::new(),
            active: None,
            outcome,
            estimate_ms: 0,
            labels: vec![
                format!("site={}", self.world.name),
                format!("fleet={}", self.world.fleets[f].name),
            ],
            requester,
            detail: json!({}),
            cancellation: None,
            doom_ms: None,
            dirty: true,
            next_pub: now,
            finished: false,
            log_seq: BTreeMap::new(),
            new_log: BTreeMap::new(),
            all_log: BTreeMap::new(),
        };
        match robot.filter(|_| !failed_to_assign) {
            None => {
                task.status = "failed";
                task.dispatch_status = "failed_to_assign";
                task.dispatch_errors = vec![json!({
                    "code": 3,
                    "category": "failed_to_assign",
                    "detail": format!("no robot of fleet {} can perform this {category} task", self.world.fleets[f].name),
                })];
                task.finish_ms = Some(now);
                self.tasks.push(task);
            }
            Some(r) => {
                task.robot = Some(r);
                self.tasks.push(task);
                self.task_log(
                    t,
                    0,
                    "info",
                    format!("Task dispatched to {}", self.robots[r].name),
                );
                self.robots[r].queue.push_back(t);
            }
        }
    }

    fn task_log(&mut self, t: usize, phase: u32, tier: &str, text: String) {
        let unix = self.unix_ms(self.now);
        let task = &mut self.tasks[t];
        let seq = task.log_seq.entry(phase).or_insert(0);
        let entry = json!({"seq": *seq, "tier": tier, "unix_millis_time": unix, "text": text});
        *seq += 1;
        task.new_log.entry(phase).or_default().push(entry.clone());
        task.all_log.entry(phase).or_default().push(entry);
    }

    fn robot_log(&mut self, r: usize, tier: &str, text: String) {
        let unix = self.unix_ms(self.now);
        let robot = &mut self.robots[r];
        robot.new_log.push(
            json!({"seq": robot.log_seq, "tier": tier, "unix_millis_time": unix, "text": text}),
        );
        robot.log_seq = robot.log_seq.wrapping_add(1);
    }

    /// The vertices a task visits, on the robot's current level.
    fn plan_task(&mut self, r: usize, t: usize) {
        let level = self.robots[r].at.level;
        let category = self.tasks[t].category;
        let n_phases = match self.tasks[t].outcome {
            Outcome::Fail(k) | Outcome::Cancel(k) => k.max(2),
            Outcome::Complete => 2,
        };
        let cells = |kind: WorkcellKind| -> Vec<usize> {
            self.world
                .workcells
                .iter()
                .enumerate()
                .filter(|(_, w)| w.kind == kind && w.at.level == level)
                .map(|(i, _)| i)
                .collect()
        };
        let mut steps = VecDeque::new();
        let mut phases = Vec::new();
        let waypoints = self.world.waypoints[level as usize].clone();
        let pick_wp = |rng: &mut Rng| waypoints.get(rng.below(waypoints.len())).copied();
        match category {
            "delivery" => {
                let disp = cells(WorkcellKind::Dispenser);
                let ing = cells(WorkcellKind::Ingestor);
                let d = disp.get(self.rng.below(disp.len())).copied();
                let i = ing.get(self.rng.below(ing.len())).copied();
                if let (Some(d), Some(i)) = (d, i) {
                    let (dv, iv) = (self.world.workcells[d].at, self.world.workcells[i].at);
                    let (dn, inn) = (
                        self.world.workcells[d].guid.clone(),
                        self.world.workcells[i].guid.clone(),
                    );
                    phases.push((format!("Go to [place:{dn}] and pick up"), dv, Some(d)));
                    phases.push((format!("Go to [place:{inn}] and drop off"), iv, Some(i)));
                    self.tasks[t].detail = json!({"pickup": {"place": dn, "handler": dn, "payload": [{"sku": "item", "quantity": 1}]}, "dropoff": {"place": inn, "handler": inn, "payload": [{"sku": "item", "quantity": 1}]}});
                }
            }
            "clean" => {
                if let Some(v) = pick_wp(&mut self.rng) {
                    phases.push(("Go to [place:cleaning zone]".to_string(), v, None));
                    phases.push(("Clean zone".to_string(), v, None));
                    self.tasks[t].detail =
                        json!({"zone": format!("{}_zone", self.world.level_names[level as usize])});
                }
            }
            _ => {}
        }
        if phases.is_empty() {
            for _ in 0..n_phases.max(2) {
                if let Some(v) = pick_wp(&mut self.rng) {
                    phases.push((
                        format!(
                            "Go to [place:{}_wp]",
                            self.world.level_names[level as usize]
                        ),
                        v,
                        None,
                    ));
                }
            }
            self.tasks[t].detail = json!({"places": phases.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), "rounds": 1});
        }
        let speed = self.robots[r].speed;
        let mut from = self.robots[r].at;
        let mut total = 0;
        for (k, (name, v, cell)) in phases.iter().enumerate() {
            steps.push_back(Step::Phase(k as u32 + 1));
            steps.push_back(Step::GoTo(*v));
            let travel =
                (manhattan(from, *v) as f64 * super::world::SPACING / speed * 1000.0) as u64;
            let work = match (category, cell) {
                ("delivery", Some(c)) => {
                    steps.push_back(Step::Wait {
                        ms: 5_000,
                        mode: RobotMode::MODE_WAITING,
                        action: "",
                        workcell: Some(*c),
                    });
                    5_000
                }
                ("clean", _) if k == 1 => {
                    steps.push_back(Step::Wait {
                        ms: 20_000,
                        mode: RobotMode::MODE_CLEANING,
                        action: "clean",
                        workcell: None,
                    });
                    20_000
                }
                _ => 0,
            };
            total += travel + work + 4_000;
            phases_push(&mut self.tasks[t].phases, name.clone(), travel + work);
            from = *v;
        }
        steps.push_back(Step::EndTask);
        self.tasks[t].estimate_ms = total;
        self.robots[r].steps = steps;
    }

    fn start_task(&mut self, r: usize, t: usize, now: u64) {
        self.robots[r].task = Some(t);
        self.robots[r].status = Status::Working;
        self.plan_task(r, t);
        let task = &mut self.tasks[t];
        task.status = "underway";
        task.start_ms = Some(now);
        task.dirty = true;
        let id = task.id.clone();
        self.task_log(t, 0, "info", "Task started".to_string());
        self.robot_log(r, "info", format!("Starting task {id}"));
    }

    fn finish_task(&mut self, r: usize, now: u64, status: &'static str) {
        let Some(t) = self.robots[r].task.take() else {
            return;
        };
        let task = &mut self.tasks[t];
        task.status = status;
        task.finish_ms = Some(now);
        task.dirty = true;
        for p in &mut task.phases {
            if p.start.is_some() && p.finish.is_none() {
                p.finish = Some(now);
                p.status = match status {
                    "completed" => "completed",
                    "canceled" => "canceled",
                    _ => "failed",
                };
            } else if p.start.is_none() {
                p.status = "skipped";
            }
        }
        task.active = None;
        let phase = task.phases.len() as u32;
        match status {
            "completed" => self.task_log(t, phase, "info", "Task completed".to_string()),
            "canceled" => self.task_log(t, 0, "warning", "Task canceled by operator".to_string()),
            _ => {
                let place = self.tasks[t]
                    .phases
                    .iter()
                    .rev()
                    .find(|p| p.start.is_some())
                    .map(|p| p.category.clone())
                    .unwrap_or_default();
                self.task_log(
                    t,
                    phase,
                    "error",
                    format!("Robot could not complete \"{place}\": navigation goal unreachable"),
                );
            }
        }
        if status == "canceled" {
            self.tasks[t].cancellation = Some(
                json!({"unix_millis_request_time": self.unix_ms(now), "labels": ["canceled by operator"]}),
            );
        }
        let robot = &mut self.robots[r];
        robot.steps.clear();
        robot.path.clear();
        robot.along = 0.0;
        robot.status = Status::Idle;
        robot.mode = RobotMode::MODE_IDLE;
        robot.action = "";
        robot.wait_until = None;
        if let Some(d) = robot.door.take() {
            self.doors[d].requests = self.doors[d].requests.saturating_sub(1);
        }
        if let Some(l) = robot.lift.take() {
            robot.lift_stage = None;
            let lift = &mut self.lifts[l];
            lift.reserved = None;
            lift.session = None;
            lift.want_open = false;
        }
    }

    fn enter_phase(&mut self, r: usize, k: u32, now: u64) {
        let Some(t) = self.robots[r].task else { return };
        let task = &mut self.tasks[t];
        for p in task.phases.iter_mut().take(k as usize - 1) {
            if p.finish.is_none() {
                p.finish = Some(now);
                p.status = "completed";
            }
        }
        if let Some(p) = task.phases.get_mut(k as usize - 1) {
            p.start = Some(now);
            p.status = "underway";
        }
        task.active = Some(k);
        task.dirty = true;
        if let Outcome::Fail(f) | Outcome::Cancel(f) = task.outcome
            && f == k
        {
            task.doom_ms = Some(now + 3_000 + self.rng.below(12_000) as u64);
        }
        let name = task
            .phases
            .get(k as usize - 1)
            .map(|p| p.category.clone())
            .unwrap_or_default();
        self.task_log(t, k, "info", format!("Started phase {k}: {name}"));
    }

    // ---- robots ------------------------------------------------------------------------------

    fn step_robot(&mut self, r: usize, now: u64) {
        let dt = STEP_MS as f64 / 1000.0;
        // Scenario overrides first.
        if let Some(u) = self.robots[r].error_until {
            if now < u {
                let robot = &mut self.robots[r];
                robot.battery = (robot.battery - 0.00002 * dt).max(0.0);
                return;
            }
            self.robots[r].error_until = None;
            self.robots[r].status = if self.robots[r].task.is_some() {
                Status::Working
            } else {
                Status::Idle
            };
            self.robots[r].mode = RobotMode::MODE_IDLE;
            self.robot_log(r, "info", "Adapter connection restored".to_string());
        }
        if let Some(t) = self.robots[r].task
            && self.robots[r].lift.is_none()
            && self.tasks[t].doom_ms.is_some_and(|d| now >= d)
        {
            let status = if matches!(self.tasks[t].outcome, Outcome::Cancel(_)) {
                "canceled"
            } else {
                "failed"
            };
            self.finish_task(r, now, status);
            return;
        }
        // The battery-low scenario's extra drain applies whatever the robot does.
        if let Some((rate, until)) = self.robots[r].drain
            && now < until
        {
            let robot = &mut self.robots[r];
            robot.battery = (robot.battery - rate * dt).max(0.0);
        }
        if self.robots[r].frozen_until.is_some_and(|u| now < u) {
            let robot = &mut self.robots[r];
            robot.battery = (robot.battery - 0.00005 * dt).max(0.0);
            return;
        }
        self.robots[r].frozen_until = None;
        let moving_drain = 0.00012;
        let idle_drain = 0.00003;
        let mut budget = self.robots[r].speed * dt;
        let mut guard = 0;
        loop {
            guard += 1;
            if guard > 16 {
                break;
            }
            let Some(step) = self.robots[r].steps.front().cloned() else {
                self.idle(r, now);
                break;
            };
            match step {
                Step::Phase(k) => {
                    self.robots[r].steps.pop_front();
                    self.enter_phase(r, k, now);
                }
                Step::GoTo(v) => {
                    self.robots[r].mode = RobotMode::MODE_MOVING;
                    self.robots[r].action = "";
                    if self.robots[r].path.is_empty() {
                        if self.robots[r].at == v {
                            self.robots[r].steps.pop_front();
                            continue;
                        }
                        self.robots[r].path = manhattan_path(self.robots[r].at, v);
                    }
                    budget = self.advance(r, budget);
                    let robot = &mut self.robots[r];
                    robot.battery = (robot.battery - moving_drain * dt).max(0.0);
                    if budget > 0.0 && robot.path.is_empty() {
                        robot.steps.pop_front();
                        continue;
                    }
                    break;
                }
                Step::Wait {
                    ms,
                    mode,
                    action,
                    workcell,
                } => {
                    let robot = &mut self.robots[r];
                    robot.mode = mode;
                    robot.action = action;
                    robot.battery = (robot.battery - idle_drain * dt).max(0.0);
                    let until = *robot.wait_until.get_or_insert(now + ms);
                    if let Some(c) = workcell
                        && let Some(t) = robot.task
                    {
                        let w = &mut self.workcells[c];
                        let id = CompactString::new(&self.tasks[t].id);
                        if !w.queue.contains(&id) {
                            w.queue.push(id);
                            w.busy_until = until;
                            w.changed = true;
                        }
                    }
                    if now + STEP_MS >= until {
                        self.robots[r].wait_until = None;
                        self.robots[r].steps.pop_front();
                    }
                    break;
                }
                Step::Lift { lift, to } => {
                    self.ride_lift(r, lift, to, now);
                    break;
                }
                Step::Charge => {
                    let robot = &mut self.robots[r];
                    robot.status = Status::Charging;
                    robot.mode = RobotMode::MODE_CHARGING;
                    robot.action = "";
                    robot.battery = (robot.battery + 0.004 * dt).min(1.0);
                    if robot.battery >= CHARGED {
                        robot.steps.pop_front();
                        robot.status = Status::Idle;
                        let pct = (robot.battery * 100.0).round();
                        self.robot_log(r, "info", format!("Charging complete at {pct}%"));
                    }
                    break;
                }
                Step::EndTask => {
                    self.robots[r].steps.pop_front();
                    self.finish_task(r, now, "completed");
                    break;
                }
            }
        }
    }

    /// Moves a robot along its path by `budget` metres; returns what is left of the budget (0 when
    /// it had to stop at a door).
    fn advance(&mut self, r: usize, mut budget: f64) -> f64 {
        while budget > 0.0 {
            let Some(&next) = self.robots[r].path.front() else {
                return budget;
            };
            let at = self.robots[r].at;
            // Doors: request before entering the edge, wait for OPEN.
            if self.robots[r].along == 0.0 {
                let key = if at < next { (at, next) } else { (next, at) };
                if let Some(&d) = self.world.door_on_edge.get(&key) {
                    if self.robots[r].door != Some(d) {
                        if !self.doors[d].admit {
                            self.robots[r].mode = RobotMode::MODE_WAITING;
                            return 0.0;
                        }
                        self.doors[d].requests += 1;
                        self.robots[r].door = Some(d);
                    }
                    if !matches!(self.doors[d].phase, DoorPhase::Open(_)) {
                        self.robots[r].mode = RobotMode::MODE_WAITING;
                        return 0.0;
                    }
                }
                let (ax, ay) = at.xy();
                let (nx, ny) = next.xy();
                self.robots[r].yaw = (ny - ay).atan2(nx - ax);
            }
            let robot = &mut self.robots[r];
            let left = super::world::SPACING - robot.along;
            if budget < left {
                robot.along += budget;
                return 0.0;
            }
            budget -= left;
            robot.along = 0.0;
            robot.at = next;
            robot.path.pop_front();
            if let Some(d) = robot.door.take() {
                self.doors[d].requests = self.doors[d].requests.saturating_sub(1);
            }
        }
        0.0
    }

    fn ride_lift(&mut self, r: usize, lift: usize, to: u16, now: u64) {
        let from = self.robots[r].at.level as usize;
        let session = format_compact!(
            "{}/{}",
            self.world.fleets[self.robots[r].fleet].name,
            self.robots[r].name
        );
        let stage = *self.robots[r].lift_stage.get_or_insert(LiftStage::Call);
        self.robots[r].mode = RobotMode::MODE_WAITING;
        let l = &mut self.lifts[lift];
        let next = match stage {
            LiftStage::Call => {
                l.session.get_or_insert(session);
                l.target = from;
                l.want_open = true;
                l.open_at(from).then_some(LiftStage::Enter(now + 2_000))
            }
            LiftStage::Enter(t) if now >= t => {
                l.want_open = false;
                l.target = to as usize;
                Some(LiftStage::Ride)
            }
            LiftStage::Ride => {
                // The robot moves with the car.
                let floor = l.floor as u16;
                l.want_open = l.floor == to as usize;
                let arrived = l.open_at(to as usize);
                self.robots[r].at = self.world.lift_vertex(lift, floor);
                arrived.then_some(LiftStage::Exit(now + 2_000))
            }
            LiftStage::Exit(t) if now >= t => {
                l.want_open = false;
                l.session = None;
                l.reserved = None;
                let robot = &mut self.robots[r];
                robot.lift = None;
                robot.lift_stage = None;
                robot.at = self.world.lift_vertex(lift, to);
                robot.steps.pop_front();
                return;
            }
            _ => None,
        };
        if let Some(next) = next {
            self.robots[r].lift_stage = Some(next);
            if next == LiftStage::Ride {
                let name = self.world.lifts[lift].name.clone();
                let level = self.world.level_names[to as usize].clone();
                self.robot_log(r, "info", format!("Riding {name} to {level}"));
            }
        }
    }

    /// A robot without steps: charge when low, else take the next task.
    fn idle(&mut self, r: usize, now: u64) {
        let robot = &mut self.robots[r];
        robot.status = Status::Idle;
        robot.mode = RobotMode::MODE_IDLE;
        robot.action = "";
        robot.battery = (robot.battery - 0.00003 * STEP_MS as f64 / 1000.0).max(0.0);
        let held_low = robot.hold_low_until.is_some_and(|u| now < u);
        if robot.battery < CHARGE_BELOW && !held_low {
            let charger = self.world.fleets[robot.fleet].robots
                [r - self.fleets[robot.fleet].robots.start]
                .charger;
            let pct = (robot.battery * 100.0).round();
            if charger.level != robot.at.level {
                // Needs a free lift; until one is free the robot waits idle.
                let Some(lift) = (0..self.lifts.len()).find(|&l| {
                    self.lifts[l].reserved.is_none()
                        && self.lifts[l].fire_until.is_none_or(|u| now >= u)
                }) else {
                    return;
                };
                self.lifts[lift].reserved = Some(r);
                let robot = &mut self.robots[r];
                robot.lift = Some(lift);
                let here = self.world.lift_vertex(lift, robot.at.level);
                robot.steps = VecDeque::from([
                    Step::GoTo(here),
                    Step::Lift {
                        lift,
                        to: charger.level,
                    },
                    Step::GoTo(charger),
                    Step::Charge,
                ]);
            } else {
                robot.steps = VecDeque::from([Step::GoTo(charger), Step::Charge]);
            }
            self.robot_log(r, "info", format!("Battery at {pct}%: going to charge"));
            return;
        }
        if held_low {
            return;
        }
        if let Some(t) = self.robots[r].queue.pop_front() {
            self.start_task(r, t, now);
            // Occasionally a delivery ends on another level through a free lift.
            if self.tasks[t].category == "delivery"
                && self.world.level_names.len() > 1
                && self.rng.chance(0.1)
                && let Some(lift) = (0..self.lifts.len()).find(|&l| {
                    self.lifts[l].reserved.is_none()
                        && self.lifts[l].fire_until.is_none_or(|u| now >= u)
                })
            {
                let level = self.robots[r].at.level;
                let to = ((level as usize + 1) % self.world.level_names.len()) as u16;
                let target = self.world.waypoints[to as usize].first().copied();
                if let Some(target) = target {
                    self.lifts[lift].reserved = Some(r);
                    self.robots[r].lift = Some(lift);
                    let here = self.world.lift_vertex(lift, level);
                    let end = self.robots[r].steps.pop_back();
                    self.robots[r].steps.extend([
                        Step::GoTo(here),
                        Step::Lift { lift, to },
                        Step::GoTo(target),
                    ]);
                    self.robots[r].steps.extend(end);
                }
            }
        }
    }

    // ---- scenarios ---------------------------------------------------------------------------

    fn scenarios(&mut self, now: u64) {
        for i in 0..self.planned.len() {
            if self.planned[i].started.is_some() || now < self.planned[i].at_ms {
                continue;
            }
            let kind = self.planned[i].kind;
            let taken: Vec<String> = self.injections.iter().map(|j| j.entity.clone()).collect();
            let mut details = BTreeMap::new();
            let end = now + kind.duration_ms();
            let entity = match kind {
                ScenarioKind::DoorHeldOpen | ScenarioKind::DoorSilent => {
                    let Some(d) = (0..self.doors.len()).find(|&d| {
                        !taken.contains(&self.world.doors[d].name.to_string())
                            && self.doors[d].phase == DoorPhase::Closed
                            && self.doors[d].requests == 0
                    }) else {
                        continue;
                    };
                    if kind == ScenarioKind::DoorHeldOpen {
                        self.doors[d].held_until = Some(end);
                    } else {
                        self.doors[d].silent_until = Some(end);
                        details.insert(
                            "last_heard_ns".into(),
                            self.doors[d].last_pub_ns.to_string(),
                        );
                    }
                    self.doors[d].report = Some(self.injections.len());
                    self.world.doors[d].name.to_string()
                }
                ScenarioKind::LiftSilent | ScenarioKind::LiftFire => {
                    let free = (0..self.lifts.len()).find(|&l| {
                        !taken.contains(&self.world.lifts[l].name.to_string())
                            && (kind == ScenarioKind::LiftSilent
                                || self.lifts[l].reserved.is_none())
                    });
                    // A lift in use finishes its ride first: try again next step.
                    let Some(l) = free else { continue };
                    if kind == ScenarioKind::LiftFire {
                        self.lifts[l].fire_until = Some(end);
                        self.lifts[l].reserved = Some(usize::MAX);
                    } else {
                        self.lifts[l].silent_until = Some(end);
                        details.insert(
                            "last_heard_ns".into(),
                            self.lifts[l].last_pub_ns.to_string(),
                        );
                    }
                    self.lifts[l].report = Some(self.injections.len());
                    self.world.lifts[l].name.to_string()
                }
                ScenarioKind::RobotStuck
                | ScenarioKind::BatteryLow
                | ScenarioKind::AdapterError => {
                    // Stuck: a robot on its way somewhere; battery: an idle one (it then waits
                    // for its charger); error: any robot not holding a door or lift.
                    let fits = |s: &Sim, r: usize| {
                        let robot = &s.robots[r];
                        let free = robot.lift.is_none()
                            && robot.door.is_none()
                            && robot.error_until.is_none();
                        free && match kind {
                            ScenarioKind::RobotStuck => {
                                robot.status == Status::Working
                                    && matches!(robot.steps.front(), Some(Step::GoTo(_)))
                                    && robot.frozen_until.is_none()
                            }
                            // Preferably one at its charger, so that it charges right away.
                            ScenarioKind::BatteryLow => {
                                let charger = s.world.fleets[robot.fleet].robots
                                    [r - s.fleets[robot.fleet].robots.start]
                                    .charger;
                                robot.status == Status::Idle
                                    && robot.steps.is_empty()
                                    && (robot.at == charger || s.now >= s.planned_at(kind) + 30_000)
                            }
                            _ => true,
                        }
                    };
                    let candidate = (0..self.robots.len())
                        .find(|&r| !taken.contains(&self.robot_entity(r)) && fits(self, r));
                    let Some(r) = candidate else { continue };
                    match kind {
                        ScenarioKind::RobotStuck => self.robots[r].frozen_until = Some(end),
                        ScenarioKind::BatteryLow => {
                            // Down to 15 % in 60 s, then held there (no charging, no tasks).
                            let rate = (self.robots[r].battery - 0.15).max(0.0) / 60.0;
                            self.robots[r].drain = Some((rate, now + 60_000));
                            self.robots[r].hold_low_until = Some(end);
                            self.robots[r].report = Some(self.injections.len());
                        }
                        _ => {
                            self.robots[r].error_until = Some(end);
                            self.robots[r].status = Status::Error;
                            self.robots[r].mode = RobotMode::MODE_ADAPTER_ERROR;
                            self.robot_log(
                                r,
                                "error",
                                "Adapter error: lost connection to the robot".to_string(),
                            );
                        }
                    }
                    self.robot_entity(r)
                }
            };
            self.planned[i].started = Some(self.injections.len());
            self.injections.push(Injection {
                kind,
                entity,
                start_ns: self.ns(now),
                end_ns: Some(self.ns(end)),
                details,
            });
        }
        // Lift fire releases its reservation at the end.
        for l in &mut self.lifts {
            if l.fire_until.is_some_and(|u| now >= u) {
                l.fire_until = None;
                if l.reserved == Some(usize::MAX) {
                    l.reserved = None;
                }
            }
        }
    }

    /// Completes an injection's details from what a publication shows: `since_ns` is the first
    /// publication showing the situation (`active`), `until_ns` the first one after it no longer
    /// shows; a silent device's first publication after the silence is `until_ns` too. Returns
    /// whether the injection is complete.
    fn note(&mut self, i: usize, log_time: u64, active: bool) -> bool {
        let inj = &mut self.injections[i];
        let silent = matches!(
            inj.kind,
            ScenarioKind::DoorSilent | ScenarioKind::LiftSilent
        );
        let d = &mut inj.details;
        if silent {
            d.insert("until_ns".into(), log_time.to_string());
            return true;
        }
        if active && !d.contains_key("since_ns") {
            d.insert("since_ns".into(), log_time.to_string());
        } else if !active && d.contains_key("since_ns") {
            d.insert("until_ns".into(), log_time.to_string());
            return true;
        }
        false
    }

    fn planned_at(&self, kind: ScenarioKind) -> u64 {
        self.planned
            .iter()
            .find(|p| p.kind == kind)
            .map_or(0, |p| p.at_ms)
    }

    fn robot_entity(&self, r: usize) -> String {
        format!(
            "{}/{}",
            self.world.fleets[self.robots[r].fleet].name, self.robots[r].name
        )
    }

    // ---- publications ------------------------------------------------------------------------

    fn publish(&mut self, now: u64, out: &mut Vec<Emit>) {
        let window = now..now + STEP_MS;
        let fleet_period = (1000.0 / self.cfg.fleet_hz).round().max(STEP_MS as f64) as u64;
        for f in 0..self.fleets.len() {
            let off = self.fleets[f].offset_ms;
            let t = now + off;
            if t % fleet_period < STEP_MS {
                let lat = self.latency_ns();
                let msg = self.fleet_state(f, t);
                let log_time = self.ns(t) + lat;
                for (k, r) in self.fleets[f].robots.clone().enumerate() {
                    if let Some(i) = self.robots[r].report {
                        let pct = msg.robots[k].battery_percent;
                        let active = if self.injections[i].details.contains_key("since_ns") {
                            pct <= 25.0
                        } else {
                            pct < 20.0
                        };
                        if self.note(i, log_time, active) {
                            self.robots[r].report = None;
                        }
                    }
                }
                out.push(Emit {
                    log_time,
                    topic: Topic::FleetStates,
                    msg: Msg::Fleet(msg),
                });
            }
            // JSON fleet state once per second, logs with it.
            if t % 1000 < STEP_MS {
                let lat = self.latency_ns();
                let frame =
                    json!({"type": "fleet_state_update", "data": self.fleet_state_json(f, t)});
                out.push(Emit {
                    log_time: self.ns(t) + lat + 100_000,
                    topic: Topic::FleetStateUpdate,
                    msg: Msg::Json(frame.to_string()),
                });
                if let Some(frame) = self.fleet_log_json(f) {
                    out.push(Emit {
                        log_time: self.ns(t) + lat + 200_000,
                        topic: Topic::FleetLogUpdate,
                        msg: Msg::Json(frame.to_string()),
                    });
                }
            }
        }
        for d in 0..self.doors.len() {
            let t = (now / 1000) * 1000 + self.doors[d].offset_ms;
            let silent = self.doors[d].silent_until.is_some_and(|u| now < u);
            if window.contains(&t) && !silent {
                let lat = self.latency_ns();
                let mode = self.doors[d].mode();
                let msg = DoorState {
                    door_time: self.stamp(t),
                    door_name: self.world.doors[d].name.clone(),
                    current_mode: DoorMode { value: mode },
                };
                let log_time = self.ns(t) + lat;
                self.doors[d].last_pub_ns = log_time;
                if let Some(i) = self.doors[d].report {
                    let done = self.note(i, log_time, mode == DoorMode::MODE_OPEN);
                    if done {
                        self.doors[d].report = None;
                    }
                }
                out.push(Emit {
                    log_time,
                    topic: Topic::DoorStates,
                    msg: Msg::Door(msg),
                });
            }
        }
        for l in 0..self.lifts.len() {
            let t = (now / 1000) * 1000 + self.lifts[l].offset_ms;
            let lift = &self.lifts[l];
            let snapshot = (
                lift.floor,
                lift.target,
                lift.door_state(),
                lift.motion(),
                lift.mode(now),
                lift.session.clone().unwrap_or_default(),
            );
            let changed = lift.last.as_ref() != Some(&snapshot);
            let silent = lift.silent_until.is_some_and(|u| now < u);
            if (window.contains(&t) || changed) && !silent {
                let at = if window.contains(&t) { t } else { now };
                self.lifts[l].last = Some(snapshot);
                let lat = self.latency_ns();
                let msg = self.lift_state(l, at);
                let log_time = self.ns(at) + lat;
                self.lifts[l].last_pub_ns = log_time;
                if let Some(i) = self.lifts[l].report {
                    let done = self.note(i, log_time, msg.current_mode == LiftState::MODE_FIRE);
                    if done {
                        self.lifts[l].report = None;
                    }
                }
                out.push(Emit {
                    log_time,
                    topic: Topic::LiftStates,
                    msg: Msg::Lift(msg),
                });
            }
        }
        for w in 0..self.workcells.len() {
            let t = (now / 2000) * 2000 + self.workcells[w].offset_ms;
            let due = window.contains(&t);
            if due || self.workcells[w].changed {
                let at = if due { t } else { now };
                self.workcells[w].changed = false;
                let cell = &self.world.workcells[w];
                let sim = &self.workcells[w];
                let busy = !sim.queue.is_empty();
                let msg = WorkcellState {
                    time: self.stamp(at),
                    guid: cell.guid.clone(),
                    mode: if busy {
                        WorkcellState::BUSY
                    } else {
                        WorkcellState::IDLE
                    },
                    request_guid_queue: sim.queue.clone(),
                    seconds_remaining: if busy {
                        sim.busy_until.saturating_sub(at) as f32 / 1000.0
                    } else {
                        0.0
                    },
                };
                let topic = match cell.kind {
                    WorkcellKind::Dispenser => Topic::DispenserStates,
                    WorkcellKind::Ingestor => Topic::IngestorStates,
                };
                let lat = self.latency_ns();
                out.push(Emit {
                    log_time: self.ns(at) + lat,
                    topic,
                    msg: Msg::Workcell(msg),
                });
            }
        }
        for t in 0..self.tasks.len() {
            let task = &self.tasks[t];
            if task.finished {
                continue;
            }
            let periodic = task.status == "underway" && now >= task.next_pub;
            if !(task.dirty || periodic) {
                continue;
            }
            let at = now + 40;
            let frame = json!({"type": "task_state_update", "data": self.task_state_json(t)});
            let lat = self.latency_ns();
            out.push(Emit {
                log_time: self.ns(at) + lat,
                topic: Topic::TaskStateUpdate,
                msg: Msg::Json(frame.to_string()),
            });
            if let Some(log) = self.task_log_json(t, false) {
                out.push(Emit {
                    log_time: self.ns(at) + lat + 100_000,
                    topic: Topic::TaskLogUpdate,
                    msg: Msg::Json(log.to_string()),
                });
            }
            let task = &mut self.tasks[t];
            task.dirty = false;
            task.next_pub = now + 1000;
            task.new_log.clear();
            if matches!(task.status, "completed" | "failed" | "canceled") {
                task.finished = true;
            }
        }
    }

    /// After a simulated websocket reconnect the adapter re-sends every accumulated task log.
    fn resend_task_logs(&mut self, now: u64, out: &mut Vec<Emit>) {
        for t in 0..self.tasks.len() {
            if let Some(log) = self.task_log_json(t, true) {
                out.push(Emit {
                    log_time: self.ns(now + 90),
                    topic: Topic::TaskLogUpdate,
                    msg: Msg::WsOnly(log.to_string()),
                });
            }
        }
    }

    fn fleet_state(&self, f: usize, t: u64) -> FleetState {
        let stamp = self.stamp(t);
        let cols = self.world.cols as u64;
        let robots = self.fleets[f]
            .robots
            .clone()
            .map(|r| {
                let robot = &self.robots[r];
                let (x, y) = robot.xy();
                let level = self.world.level_names[robot.at.level as usize].clone();
                let mode = match robot.status {
                    Status::Error => RobotMode::MODE_ADAPTER_ERROR,
                    Status::Charging => RobotMode::MODE_CHARGING,
                    _ => robot.mode,
                };
                let path = robot
                    .path
                    .iter()
                    .take(3)
                    .map(|v| {
                        let (px, py) = v.xy();
                        Location {
                            t: stamp,
                            x: px as f32,
                            y: py as f32,
                            yaw: robot.yaw as f32,
                            obey_approach_speed_limit: false,
                            approach_speed_limit: 0.0,
                            level_name: level.clone(),
                            index: v.row as u64 * cols + v.col as u64,
                        }
                    })
                    .collect();
                RobotState {
                    name: robot.name.clone(),
                    model: self.world.fleets[f].model.clone(),
                    task_id: robot
                        .task
                        .map(|t| CompactString::new(&self.tasks[t].id))
                        .unwrap_or_default(),
                    seq: t / STEP_MS,
                    mode: RobotMode {
                        mode,
                        mode_request_id: 0,
                        performing_action: Some(CompactString::new(robot.action)),
                    },
                    battery_percent: (robot.battery * 100.0) as f32,
                    location: Location {
                        t: stamp,
                        x: x as f32,
                        y: y as f32,
                        yaw: robot.yaw as f32,
                        obey_approach_speed_limit: false,
                        approach_speed_limit: 0.0,
                        level_name: level,
                        index: robot.at.row as u64 * cols + robot.at.col as u64,
                    },
                    path,
                }
            })
            .collect();
        FleetState {
            name: self.world.fleets[f].name.clone(),
            robots,
        }
    }

    fn fleet_state_json(&self, f: usize, t: u64) -> Value {
        let unix = self.unix_ms(t);
        let mut robots = serde_json::Map::new();
        for r in self.fleets[f].robots.clone() {
            let robot = &self.robots[r];
            let (x, y) = robot.xy();
            let issues: Vec<Value> = if robot.status == Status::Error {
                vec![json!({"category": "adapter_error", "detail": "lost connection to the robot"})]
            } else {
                vec![]
            };
            robots.insert(
                robot.name.to_string(),
                json!({
                    "name": robot.name,
                    "status": robot.status.as_str(),
                    "task_id": robot.task.map(|t| self.tasks[t].id.clone()).unwrap_or_default(),
                    "unix_millis_time": unix,
                    "location": {
                        "map": self.world.level_names[robot.at.level as usize],
                        "x": round(x, 3),
                        "y": round(y, 3),
                        "yaw": round(robot.yaw, 3),
                    },
                    "battery": round(robot.battery, 4),
                    "issues": issues,
                    "commission": {"dispatch_tasks": true, "direct_tasks": true, "idle_behavior": true},
                    "mutex_groups": {"locked": [], "requesting": []},
                }),
            );
        }
        json!({"name": self.world.fleets[f].name, "robots": robots})
    }

    fn fleet_log_json(&mut self, f: usize) -> Option<Value> {
        let mut robots = serde_json::Map::new();
        for r in self.fleets[f].robots.clone() {
            let entries = std::mem::take(&mut self.robots[r].new_log);
            if !entries.is_empty() {
                robots.insert(self.robots[r].name.to_string(), Value::Array(entries));
            }
        }
        (!robots.is_empty()).then(|| {
            json!({"type": "fleet_log_update", "data": {"name": self.world.fleets[f].name, "log": [], "robots": robots}})
        })
    }

    fn lift_state(&self, l: usize, t: u64) -> LiftState {
        let lift = &self.lifts[l];
        LiftState {
            lift_time: self.stamp(t),
            lift_name: self.world.lifts[l].name.clone(),
            available_floors: self.world.level_names.clone(),
            current_floor: self.world.level_names[lift.floor].clone(),
            destination_floor: self.world.level_names[lift.target].clone(),
            door_state: lift.door_state(),
            motion_state: lift.motion(),
            available_modes: vec![LiftState::MODE_HUMAN, LiftState::MODE_AGV],
            current_mode: lift.mode(t),
            session_id: lift.session.clone().unwrap_or_default(),
        }
    }

    fn task_state_json(&self, t: usize) -> Value {
        let task = &self.tasks[t];
        let unix = |ms: Option<u64>| ms.map(|m| self.unix_ms(m));
        let mut phases = serde_json::Map::new();
        for (i, p) in task.phases.iter().enumerate() {
            let id = i as u64 + 1;
            phases.insert(
                id.to_string(),
                json!({
                    "id": id,
                    "category": p.category,
                    "detail": p.detail,
                    "unix_millis_start_time": unix(p.start),
                    "unix_millis_finish_time": unix(p.finish),
                    "estimate_millis": p.estimate_ms,
                    "final_event_id": 0,
                    "events": {"0": {"id": 0, "status": p.status, "name": p.category, "detail": "", "deps": []}},
                    "skip_requests": {},
                }),
            );
        }
        let completed: Vec<u64> = task
            .phases
            .iter()
            .enumerate()
            .filter(|(_, p)| p.finish.is_some())
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let pending: Vec<u64> = task
            .phases
            .iter()
            .enumerate()
            .filter(|(_, p)| p.start.is_none() && p.status != "skipped")
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let elapsed = task.start_ms.map_or(0, |s| self.now.saturating_sub(s));
        let robot = task.robot.map(|r| self.robots[r].name.clone());
        let fleet = &self.world.fleets[task.fleet].name;
        let assigned = robot.as_ref().map(|r| json!({"group": fleet, "name": r}));
        json!({
            "booking": {
                "id": task.id,
                "unix_millis_earliest_start_time": self.unix_ms(task.request_ms),
                "unix_millis_request_time": self.unix_ms(task.request_ms),
                "priority": null,
                "labels": task.labels,
                "requester": task.requester,
            },
            "category": task.category,
            "detail": task.detail,
            "unix_millis_start_time": unix(task.start_ms),
            "unix_millis_finish_time": unix(task.finish_ms),
            "original_estimate_millis": task.estimate_ms,
            "estimate_millis": task.estimate_ms.saturating_sub(elapsed),
            "assigned_to": assigned,
            "status": task.status,
            "dispatch": {
                "status": task.dispatch_status,
                "assignment": robot.as_ref().map(|r| json!({"fleet_name": fleet, "expected_robot_name": r})),
                "errors": task.dispatch_errors,
            },
            "phases": phases,
            "completed": completed,
            "active": task.active,
            "pending": pending,
            "interruptions": {},
            "cancellation": task.cancellation,
            "killed": null,
        })
    }

    /// The task log frame: new entries, or every entry (`all`) for a resend.
    fn task_log_json(&self, t: usize, all: bool) -> Option<Value> {
        let task = &self.tasks[t];
        let src = if all { &task.all_log } else { &task.new_log };
        if src.values().all(|v| v.is_empty()) {
            return None;
        }
        let mut phases = serde_json::Map::new();
        for (phase, entries) in src.iter().filter(|(p, e)| **p > 0 && !e.is_empty()) {
            phases.insert(
                phase.to_string(),
                json!({"log": [], "events": {"0": entries}}),
            );
        }
        let log = src.get(&0).cloned().unwrap_or_default();
        Some(
            json!({"type": "task_log_update", "data": {"task_id": task.id, "log": log, "phases": phases}}),
        )
    }

    /// Tasks created so far and robots simulated (for the report).
    pub fn counts(&self) -> (usize, usize) {
        (self.tasks.len(), self.robots.len())
    }

    /// Task outcomes so far, by status.
    pub fn task_statuses(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for t in &self.tasks {
            *m.entry(t.status).or_default() += 1;
        }
        m
    }
}

fn phases_push(phases: &mut Vec<PhaseSim>, category: String, estimate_ms: u64) {
    phases.push(PhaseSim {
        category,
        detail: String::new(),
        start: None,
        finish: None,
        estimate_ms,
        status: "standby",
    });
}

fn manhattan(a: Vertex, b: Vertex) -> u32 {
    (a.row as i32 - b.row as i32).unsigned_abs() + (a.col as i32 - b.col as i32).unsigned_abs()
}

/// Along the row first, then the column (same level).
fn manhattan_path(from: Vertex, to: Vertex) -> VecDeque<Vertex> {
    let mut path = VecDeque::new();
    let mut cur = from;
    while cur.col != to.col {
        cur.col = if to.col > cur.col {
            cur.col + 1
        } else {
            cur.col - 1
        };
        path.push_back(cur);
    }
    while cur.row != to.row {
        cur.row = if to.row > cur.row {
            cur.row + 1
        } else {
            cur.row - 1
        };
        path.push_back(cur);
    }
    path
}
