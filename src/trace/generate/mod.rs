//! `rmf-dash trace gen`: writes a realistic rosbag2 MCAP recording of a simulated RMF site,
//! deterministic for a seed (same seed, same bytes), plus the fleet-adapter websocket frames of
//! the same run (one JSON frame per line) for the `/_internal` ingest.
//!
//! - [`world`]: the site's static layout and its `BuildingMap`;
//! - [`sim`]: robots, tasks, doors, lifts and workcells over time;
//! - [`scenario`]: injected situations and their manifest;
//! - [`rng`]: the deterministic random numbers.

pub mod rng;
pub mod scenario;
pub mod sim;
pub mod world;

use std::collections::{BTreeMap, BinaryHeap};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use compact_str::CompactString;
use serde::Serialize;
use thiserror::Error;

use crate::ingest::builtin;
use crate::ingest::cdr::RmfRelease;
use crate::ingest::cdr::typed::{Cdr, encode_into};
use crate::progress::Progress;
use rmf_dash_dataflows::model::ros::StdString;
use scenario::{Injection, ScenarioSpec};
use sim::{Emit, Msg, STEP_MS, Sim};

#[derive(Debug, Error)]
pub enum GenError {
    #[error("{0}")]
    Config(String),
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing MCAP")]
    Mcap(#[from] mcap::McapError),
}

/// Site presets: the rmf_demos worlds (sizes from RMF.md section 3) and a scalable site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// 1 fleet, 2 robots, 3 doors, 1 level.
    Office,
    /// 2 fleets, 4 robots, 19 doors, 2 lifts, 3 levels.
    Hotel,
    /// 5 fleets, 11 robots, 5 doors, 1 level.
    Airport,
    /// Scalable: 50 fleets x 20 robots, a door per 5 robots, a lift per 100 robots, 4 levels
    /// unless given.
    Site,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: CompactString,
    pub fleet_sizes: Vec<usize>,
    /// rmf_demos-style names for the presets; generic names when absent.
    pub fleet_names: Option<Vec<CompactString>>,
    pub door_names: Option<Vec<CompactString>>,
    pub workcell_names: Option<(CompactString, CompactString)>,
    pub doors: usize,
    pub lifts: usize,
    pub levels: usize,
    pub duration_ms: u64,
    pub seed: u64,
    pub layout: RmfRelease,
    pub scenarios: Vec<ScenarioSpec>,
    /// FleetState publication rate per fleet.
    pub fleet_hz: f64,
    /// When the simulated websocket reconnects (all task logs re-sent in the frames file).
    pub ws_reconnect_ms: Option<u64>,
}

impl SiteConfig {
    pub fn preset(preset: Preset) -> SiteConfig {
        let names = |v: &[&str]| Some(v.iter().map(|s| CompactString::new(*s)).collect());
        let base = SiteConfig {
            name: "site".into(),
            fleet_sizes: vec![20; 50],
            fleet_names: None,
            door_names: None,
            workcell_names: None,
            doors: 200,
            lifts: 10,
            levels: 4,
            duration_ms: 60_000,
            seed: 1,
            layout: RmfRelease::Jazzy,
            scenarios: Vec::new(),
            fleet_hz: 10.0,
            ws_reconnect_ms: None,
        };
        match preset {
            Preset::Office => SiteConfig {
                name: "office".into(),
                fleet_sizes: vec![2],
                fleet_names: names(&["tinyRobot"]),
                door_names: names(&["main_door", "coe_door", "hardware_door"]),
                workcell_names: Some(("coke_dispenser".into(), "coke_ingestor".into())),
                doors: 3,
                lifts: 0,
                levels: 1,
                ..base
            },
            Preset::Hotel => SiteConfig {
                name: "hotel".into(),
                fleet_sizes: vec![2, 2],
                fleet_names: names(&["tinyRobot", "cleanerBotA"]),
                doors: 19,
                lifts: 2,
                levels: 3,
                ..base
            },
            Preset::Airport => SiteConfig {
                name: "airport_terminal".into(),
                fleet_sizes: vec![3, 2, 2, 2, 2],
                fleet_names: names(&[
                    "tinyRobot",
                    "deliveryRobot",
                    "cleanerBotA",
                    "cleanerBotE",
                    "caddy",
                ]),
                doors: 5,
                lifts: 0,
                levels: 1,
                ..base
            },
            Preset::Site => base,
        }
    }

    pub fn robots(&self) -> usize {
        self.fleet_sizes.iter().sum()
    }

    fn validate(&self) -> Result<(), GenError> {
        let bad = |m: String| Err(GenError::Config(m));
        if self.fleet_sizes.is_empty() || self.robots() == 0 {
            return bad("the site needs at least one robot".into());
        }
        if self.levels == 0 || self.levels > 200 {
            return bad(format!("--levels must be 1..=200, got {}", self.levels));
        }
        if self.robots() > 100_000 || self.doors > 100_000 || self.lifts > 1_000 {
            return bad("at most 100,000 robots, 100,000 doors and 1,000 lifts".into());
        }
        if self.duration_ms < 1_000 {
            return bad("--duration must be at least 1s".into());
        }
        if !(self.fleet_hz > 0.0 && self.fleet_hz <= 10.0) {
            return bad(format!(
                "--fleet-rate must be in (0, 10] Hz, got {}",
                self.fleet_hz
            ));
        }
        let mut auto = 30_000;
        for s in &self.scenarios {
            if s.kind.needs_lift() && self.lifts == 0 {
                return bad(format!(
                    "scenario {} needs a lift; the site has none (--lifts)",
                    s.kind.name()
                ));
            }
            if s.kind.needs_door() && self.doors == 0 {
                return bad(format!(
                    "scenario {} needs a door; the site has none (--doors)",
                    s.kind.name()
                ));
            }
            let at = s.at_ms.unwrap_or_else(|| {
                let t = auto;
                auto += 20_000;
                t
            });
            if at + s.kind.needs_ms() > self.duration_ms {
                return bad(format!(
                    "scenario {} starting at {} s lasts with its aftermath {} s: the trace must last at least {} s, but --duration is {} s",
                    s.kind.name(),
                    at / 1000,
                    s.kind.needs_ms() / 1000,
                    (at + s.kind.needs_ms()).div_ceil(1000),
                    self.duration_ms / 1000
                ));
            }
        }
        Ok(())
    }
}

/// Command-line form of a [`SiteConfig`].
#[derive(clap::Args, Debug, Clone)]
pub struct SiteArgs {
    /// Site preset; the size options below override it.
    #[arg(long, value_enum, default_value = "office")]
    pub preset: Preset,
    /// Number of fleets.
    #[arg(long)]
    pub fleets: Option<usize>,
    /// Robots in each fleet.
    #[arg(long)]
    pub robots_per_fleet: Option<usize>,
    #[arg(long)]
    pub doors: Option<usize>,
    #[arg(long)]
    pub lifts: Option<usize>,
    #[arg(long)]
    pub levels: Option<usize>,
    /// Length of the recording, like 60s, 10m, 1h.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// RobotMode layout of the FleetState messages.
    #[arg(long, value_enum, default_value = "jazzy")]
    pub layout: RmfRelease,
    /// Inject a situation: NAME or NAME@TIME (door-held-open, robot-stuck, battery-low,
    /// door-silent, lift-silent, lift-fire, adapter-error), or `all`. Repeatable.
    #[arg(long = "scenario", value_parser = scenario::parse_specs)]
    pub scenarios: Vec<Vec<ScenarioSpec>>,
    /// FleetState publications per second per fleet.
    #[arg(long, default_value_t = 10.0)]
    pub fleet_rate: f64,
    /// Simulate a websocket reconnect at this time (the frames file then re-sends every task
    /// log so far); default: half way.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ws_reconnect_at: Option<Duration>,
}

impl SiteArgs {
    pub fn config(&self) -> Result<SiteConfig, String> {
        let mut c = SiteConfig::preset(self.preset);
        if self.fleets.is_some() || self.robots_per_fleet.is_some() {
            let fleets = self.fleets.unwrap_or(c.fleet_sizes.len());
            let per = self
                .robots_per_fleet
                .unwrap_or(c.fleet_sizes.first().copied().unwrap_or(1));
            c.fleet_sizes = vec![per; fleets];
            c.fleet_names = None;
            if self.preset == Preset::Site {
                c.doors = (fleets * per / 5).max(1);
                c.lifts = (fleets * per / 100).max(1);
            }
        }
        c.doors = self.doors.unwrap_or(c.doors);
        if self.doors.is_some() {
            c.door_names = None;
        }
        c.lifts = self.lifts.unwrap_or(c.lifts);
        c.levels = self.levels.unwrap_or(c.levels);
        c.duration_ms = self.duration.as_millis() as u64;
        c.seed = self.seed;
        c.layout = self.layout;
        c.scenarios = self.scenarios.iter().flatten().cloned().collect();
        // `all` on a site without lifts or doors skips what cannot happen there.
        if self.scenarios.iter().any(|s| s.len() > 1) {
            c.scenarios.retain(|s| {
                (!s.kind.needs_lift() || c.lifts > 0) && (!s.kind.needs_door() || c.doors > 0)
            });
        }
        c.fleet_hz = self.fleet_rate;
        c.ws_reconnect_ms = Some(
            self.ws_reconnect_at
                .map_or(c.duration_ms / 2, |d| d.as_millis() as u64),
        );
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// The topics of a generated trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Topic {
    Map,
    FleetStates,
    DoorStates,
    LiftStates,
    DispenserStates,
    IngestorStates,
    FleetStateUpdate,
    FleetLogUpdate,
    TaskStateUpdate,
    TaskLogUpdate,
}

impl Topic {
    const ALL: [Topic; 10] = [
        Topic::Map,
        Topic::FleetStates,
        Topic::DoorStates,
        Topic::LiftStates,
        Topic::DispenserStates,
        Topic::IngestorStates,
        Topic::FleetStateUpdate,
        Topic::FleetLogUpdate,
        Topic::TaskStateUpdate,
        Topic::TaskLogUpdate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Map => "/map",
            Topic::FleetStates => "/fleet_states",
            Topic::DoorStates => "/door_states",
            Topic::LiftStates => "/lift_states",
            Topic::DispenserStates => "/dispenser_states",
            Topic::IngestorStates => "/ingestor_states",
            Topic::FleetStateUpdate => "/fleet_state_update",
            Topic::FleetLogUpdate => "/fleet_log_update",
            Topic::TaskStateUpdate => "/task_state_update",
            Topic::TaskLogUpdate => "/task_log_update",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Topic::Map => "rmf_building_map_msgs/msg/BuildingMap",
            Topic::FleetStates => "rmf_fleet_msgs/msg/FleetState",
            Topic::DoorStates => "rmf_door_msgs/msg/DoorState",
            Topic::LiftStates => "rmf_lift_msgs/msg/LiftState",
            Topic::DispenserStates => "rmf_dispenser_msgs/msg/DispenserState",
            Topic::IngestorStates => "rmf_ingestor_msgs/msg/IngestorState",
            _ => "std_msgs/msg/String",
        }
    }

    /// rosbag2's `offered_qos_profiles` of the main publisher (RMF.md section 3).
    fn qos(self) -> String {
        // reliability 1 = reliable; durability 1 = transient local, 2 = volatile; history 1 = keep last.
        let (depth, durability) = match self {
            Topic::Map => (1, 1),
            Topic::FleetStates | Topic::DoorStates | Topic::LiftStates => (100, 2),
            Topic::DispenserStates | Topic::IngestorStates => (10, 2),
            Topic::FleetLogUpdate | Topic::TaskLogUpdate => (100, 1),
            Topic::FleetStateUpdate | Topic::TaskStateUpdate => (10, 1),
        };
        format!(
            "- history: 1\n  depth: {depth}\n  reliability: 1\n  durability: {durability}\n  deadline:\n    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: false\n"
        )
    }
}

/// What a generation produced.
#[derive(Debug, Serialize)]
pub struct Report {
    pub path: String,
    pub ws_path: Option<String>,
    pub site: String,
    pub robots: usize,
    pub doors: usize,
    pub lifts: usize,
    pub levels: usize,
    pub duration_s: f64,
    pub messages: u64,
    pub bytes: u64,
    pub ws_frames: u64,
    pub per_topic: BTreeMap<String, u64>,
    pub tasks: usize,
    pub task_statuses: BTreeMap<String, usize>,
    pub injections: Vec<Injection>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} ({:.1} MB): site {} with {} robots, {} doors, {} lifts, {} levels, {:.0} s",
            self.path,
            self.bytes as f64 / 1e6,
            self.site,
            self.robots,
            self.doors,
            self.lifts,
            self.levels,
            self.duration_s
        )?;
        if let Some(ws) = &self.ws_path {
            writeln!(f, "wrote {ws} ({} websocket frames)", self.ws_frames)?;
        }
        for (t, n) in &self.per_topic {
            writeln!(f, "  {t:<22} {n:>10}")?;
        }
        let statuses: Vec<String> = self
            .task_statuses
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "tasks: {} ({})", self.tasks, statuses.join(", "))?;
        for i in &self.injections {
            writeln!(
                f,
                "injected {} on {} at {} ns",
                i.kind.name(),
                i.entity,
                i.start_ns
            )?;
        }
        Ok(())
    }
}

/// Log time of the start of every generated trace: 2026-01-05T08:00:00Z.
pub const START_NS: u64 = 1_767_600_000_000_000_000;

struct Pending {
    log_time: u64,
    order: u64,
    emit: Emit,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.log_time, self.order) == (o.log_time, o.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed: the heap pops the earliest first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.log_time, o.order).cmp(&(self.log_time, self.order))
    }
}

/// Writes the trace to `out` (MCAP) and the websocket frames to `ws` (JSON lines).
pub fn generate(cfg: &SiteConfig, out: &Path, ws: Option<&Path>) -> Result<Report, GenError> {
    cfg.validate()?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| GenError::Io { path, source }
    };
    let file = std::fs::File::create(out).map_err(io(out))?;
    let mut writer = mcap::WriteOptions::new()
        .profile("ros2")
        .library("rmf-dash trace gen")
        .compression(Some(mcap::Compression::Zstd))
        // One compression worker: runs beside the simulation and keeps the output identical
        // on every machine.
        .compression_threads(1)
        .create(BufWriter::with_capacity(1 << 20, file))?;
    let mut ws_out = match ws {
        Some(p) => Some(BufWriter::new(std::fs::File::create(p).map_err(io(p))?)),
        None => None,
    };
    let mut channels = BTreeMap::new();
    for topic in Topic::ALL {
        let text = builtin::schema_text(topic.type_name(), cfg.layout).unwrap_or_default();
        let schema = writer.add_schema(topic.type_name(), "ros2msg", text.as_bytes())?;
        let meta = BTreeMap::from([("offered_qos_profiles".to_string(), topic.qos())]);
        let id = writer.add_channel(schema, topic.name(), "cdr", &meta)?;
        channels.insert(topic, (id, 0u32));
    }

    let mut sim = Sim::new(cfg, START_NS);
    let steps = cfg.duration_ms / STEP_MS;
    let mut progress = Progress::new(
        format!(
            "generating {} ({} robots, {} s)",
            cfg.name,
            cfg.robots(),
            cfg.duration_ms / 1000
        ),
        Some(steps),
    );
    let mut heap = BinaryHeap::new();
    let mut order = 0u64;
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    let (mut messages, mut ws_frames) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut write =
        |p: Pending, buf: &mut Vec<u8>, writer: &mut mcap::Writer<_>| -> Result<(), GenError> {
            let mut frame = None;
            let payload: &[u8] = match &p.emit.msg {
                Msg::Door(m) => encode(m, cfg.layout, buf),
                Msg::Lift(m) => encode(m, cfg.layout, buf),
                Msg::Workcell(m) => encode(m, cfg.layout, buf),
                Msg::Fleet(m) => encode(m, cfg.layout, buf),
                Msg::Map(m) => encode(m.as_ref(), cfg.layout, buf),
                Msg::Json(text) => {
                    frame = Some(text.as_str());
                    encode(&StdString { data: text.clone() }, cfg.layout, buf)
                }
                Msg::WsOnly(text) => {
                    if let Some(w) = &mut ws_out {
                        writeln!(w, "{text}").map_err(io(ws.unwrap_or(out)))?;
                        ws_frames += 1;
                    }
                    return Ok(());
                }
            };
            let (id, seq) = channels
                .get_mut(&p.emit.topic)
                .ok_or_else(|| GenError::Config("unknown topic".into()))?;
            *seq += 1;
            writer.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: *id,
                    sequence: *seq,
                    log_time: p.log_time,
                    publish_time: p.log_time,
                },
                payload,
            )?;
            messages += 1;
            *per_topic
                .entry(p.emit.topic.name().to_string())
                .or_default() += 1;
            if let (Some(text), Some(w)) = (frame, &mut ws_out) {
                writeln!(w, "{text}").map_err(io(ws.unwrap_or(out)))?;
                ws_frames += 1;
            }
            Ok(())
        };
    let map = sim.map();
    write(
        Pending {
            log_time: map.log_time,
            order: 0,
            emit: map,
        },
        &mut buf,
        &mut writer,
    )?;
    for _ in 0..steps {
        for emit in sim.step() {
            order += 1;
            heap.push(Pending {
                log_time: emit.log_time,
                order,
                emit,
            });
        }
        // Everything published from now on has a log time at or after the next step's start.
        let horizon = START_NS + sim.now * 1_000_000;
        while heap.peek().is_some_and(|p| p.log_time < horizon) {
            if let Some(p) = heap.pop() {
                write(p, &mut buf, &mut writer)?;
            }
        }
        progress.inc(1);
    }
    // Published within the duration; received (log time) up to a few ms later.
    while let Some(p) = heap.pop() {
        write(p, &mut buf, &mut writer)?;
    }
    for (i, inj) in sim.injections.iter().enumerate() {
        writer.write_metadata(&mcap::records::Metadata {
            name: format!("rmf_dash.scenario.{i}"),
            metadata: inj.metadata(),
        })?;
    }
    writer.write_metadata(&mcap::records::Metadata {
        name: "rmf_dash.site".into(),
        metadata: BTreeMap::from([
            ("name".to_string(), cfg.name.to_string()),
            ("seed".to_string(), cfg.seed.to_string()),
            ("layout".to_string(), cfg.layout.to_string()),
            ("robots".to_string(), cfg.robots().to_string()),
            ("fleets".to_string(), cfg.fleet_sizes.len().to_string()),
            ("doors".to_string(), sim.world.doors.len().to_string()),
            ("lifts".to_string(), sim.world.lifts.len().to_string()),
            (
                "levels".to_string(),
                sim.world.level_names.len().to_string(),
            ),
        ]),
    })?;
    writer.finish()?;
    drop(writer);
    if let Some(mut w) = ws_out {
        w.flush().map_err(io(ws.unwrap_or(out)))?;
    }
    let bytes = std::fs::metadata(out).map_err(io(out))?.len();
    progress.finish(&format!(
        "{messages} messages, {:.1} MB",
        bytes as f64 / 1e6
    ));
    let (tasks, robots) = sim.counts();
    Ok(Report {
        path: out.display().to_string(),
        ws_path: ws.map(|p| p.display().to_string()),
        site: cfg.name.to_string(),
        robots,
        doors: sim.world.doors.len(),
        lifts: sim.world.lifts.len(),
        levels: sim.world.level_names.len(),
        duration_s: cfg.duration_ms as f64 / 1000.0,
        messages,
        bytes,
        ws_frames,
        per_topic,
        tasks,
        task_statuses: sim
            .task_statuses()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        injections: sim.injections.clone(),
    })
}

fn encode<'a, T: Cdr>(value: &T, release: RmfRelease, buf: &'a mut Vec<u8>) -> &'a [u8] {
    *buf = encode_into(value, release, std::mem::take(buf));
    buf
}
