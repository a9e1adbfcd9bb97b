//! `rmf-dash bench`: every performance figure of the project on a generated trace, each next to
//! a baseline measured in the same run (absolute times on a shared machine are noise; ratios are
//! not). Prints a table and writes a JSON report.
//!
//! Sections so far: `decode` (typed and generic CDR decoding vs a plain copy of the same bytes),
//! `engine` (input records through every derived event on 1 and 2 workers vs a naive
//! recomputation; memory per entity), `latency` (input to complete output at the real-time
//! rate), `ingest` (`/_internal` frames/s vs websocket reception alone), `fanout` (socket.io
//! deliveries, server CPU per delivery, memory per idle client and end-to-end latency with many
//! clients at real time, vs a plain websocket server; the clients in a load process of their own,
//! [`load`]), the last two against a live server in this process ([`live`]), `store` (writer
//! rows/s vs raw binary COPY, restore times), and `soak` (memory and throughput per site hour over
//! a long trace, against the first hour: [`soak`]; its own trace, `--soak-hours`).

pub mod engine;
pub mod live;
pub mod load;
pub mod memory;
pub mod naive;
pub mod soak;
pub mod store;

use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::ingest::bag::{BagError, Recording};
use crate::ingest::cdr::RmfRelease;
use crate::ingest::cdr::generic::Plan;
use crate::ingest::cdr::typed;
use crate::trace::generate::{self, GenError, Preset, SiteConfig};
use rmf_dash_dataflows::model::ros::FleetState;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Gen(#[from] GenError),
    #[error(transparent)]
    Bag(#[from] BagError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Sites to measure on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchSite {
    Office,
    Hotel,
    Airport,
    /// 1,000 robots in 50 fleets, 200 doors, 10 lifts, 4 levels.
    #[value(name = "1k")]
    #[serde(rename = "1k")]
    Site1k,
    /// 10,000 robots in 500 fleets, 2,000 doors, 100 lifts, 10 levels (RMF.md section 3).
    #[value(name = "10k")]
    #[serde(rename = "10k")]
    Site10k,
}

impl BenchSite {
    pub fn config(self, duration_ms: u64) -> SiteConfig {
        let mut c = match self {
            BenchSite::Office => SiteConfig::preset(Preset::Office),
            BenchSite::Hotel => SiteConfig::preset(Preset::Hotel),
            BenchSite::Airport => SiteConfig::preset(Preset::Airport),
            BenchSite::Site1k => SiteConfig::preset(Preset::Site),
            BenchSite::Site10k => SiteConfig {
                fleet_sizes: vec![20; 500],
                doors: 2000,
                lifts: 100,
                levels: 10,
                ..SiteConfig::preset(Preset::Site)
            },
        };
        c.duration_ms = duration_ms;
        c.seed = 7;
        c
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub site: BenchSite,
    pub duration: Duration,
    /// Smoke run: a small site, short trace, few repetitions.
    pub quick: bool,
    pub tick_ms: u64,
    /// Only these sections (`decode`, `engine`, `latency`, `ingest`, `fanout`, `store`,
    /// `soak`); all when empty.
    pub only: Vec<String>,
    /// socket.io clients of the fan-out section.
    pub clients: usize,
    /// Site hours of the soak section's trace (not `duration`; 3 one-minute hours with `quick`).
    pub soak_hours: u32,
    /// The soak section also runs with the store writer into a private PostgreSQL.
    pub soak_store: bool,
    /// The soak section's trace, kept: read when it exists, else generated there (`None`: a
    /// temporary file in the work directory).
    pub soak_trace: Option<std::path::PathBuf>,
    /// The soak engine's `--ended-task-retention` (`None`: ended tasks are kept, the "before").
    pub soak_task_retention_ms: Option<u64>,
}

impl BenchOptions {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

/// A measured figure and the baseline it is compared with.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub section: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub baseline: Option<Baseline>,
    /// value / baseline (higher is better for rates, lower for times: see `better`).
    pub ratio: Option<f64>,
    pub better: &'static str,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub commit: String,
    pub site: BenchSite,
    pub duration_s: f64,
    pub quick: bool,
    pub trace: TraceFacts,
    pub figures: Vec<Figure>,
    /// The soak section's rows, one per variant and site hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<Vec<soak::SoakHour>>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gb: f64,
    pub os: String,
}

#[derive(Debug, Default, Serialize)]
pub struct TraceFacts {
    pub messages: u64,
    pub bytes: u64,
    pub records: u64,
    pub robot_updates: u64,
    pub entities: usize,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let memory_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_gb: (memory_kb / 1e6 * 10.0).round() / 10.0,
        os: std::env::consts::OS.to_string(),
    }
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn rate(
    name: &str,
    section: &'static str,
    n: f64,
    d: Duration,
    unit: &'static str,
    baseline: Option<(&str, f64, Duration)>,
    note: &str,
) -> Figure {
    let value = n / d.as_secs_f64().max(1e-9);
    let baseline = baseline.map(|(b, bn, bd)| Baseline {
        name: b.to_string(),
        value: bn / bd.as_secs_f64().max(1e-9),
    });
    Figure {
        section,
        name: name.to_string(),
        value,
        unit,
        ratio: baseline.as_ref().map(|b| value / b.value.max(1e-9)),
        baseline,
        better: "higher",
        note: note.to_string(),
    }
}

/// Times `f` over `rounds` runs and keeps the fastest.
fn best<T>(rounds: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let v = f();
        let d = start.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, v));
        }
    }
    best.unwrap_or_else(|| unreachable!("at least one round"))
}

/// Decode figures on the FleetState payloads of the trace.
fn decode_figures(path: &str, figures: &mut Vec<Figure>) -> Result<(), BenchError> {
    let rec = Recording::open(path)?;
    let channel = rec.channels.iter().position(|c| c.topic == "/fleet_states");
    let schema = rec
        .channels
        .iter()
        .find(|c| c.topic == "/fleet_states")
        .and_then(|c| c.schema.clone());
    let mut payloads = Vec::new();
    let mut total = 0usize;
    for m in rec {
        let m = m?;
        if Some(m.channel) == channel {
            total += m.data.len();
            payloads.push(m.data);
            if total > 256 << 20 {
                break;
            }
        }
    }
    let plan = schema
        .and_then(|s| {
            crate::ingest::ros2msg::MsgSchema::parse("rmf_fleet_msgs/msg/FleetState", &s).ok()
        })
        .map(|s| Plan::compile(&s));
    let n = payloads.len() as f64;
    let bytes = total as f64;
    let (copy, _) = best(3, || {
        let mut sink = 0usize;
        for p in &payloads {
            let v = p.to_vec();
            sink += v.len();
            std::hint::black_box(&v);
        }
        sink
    });
    let (typed_d, ok) = best(3, || {
        payloads
            .iter()
            .filter(|p| typed::decode::<FleetState>(p, RmfRelease::Jazzy).is_ok())
            .count()
    });
    let note = format!(
        "{} FleetState messages, {:.0} B each",
        payloads.len(),
        bytes / n.max(1.0)
    );
    figures.push(rate(
        "FleetState typed decode",
        "decode",
        bytes / 1e6,
        typed_d,
        "MB/s",
        Some(("memcpy of the same bytes", bytes / 1e6, copy)),
        &note,
    ));
    figures.push(rate(
        "FleetState typed decode",
        "decode",
        n,
        typed_d,
        "msg/s",
        None,
        &format!("{ok} decoded"),
    ));
    if let Some(plan) = plan {
        let sample: Vec<&Vec<u8>> = payloads.iter().take(20_000).collect();
        let sbytes: f64 = sample.iter().map(|p| p.len() as f64).sum();
        let (generic_d, _) = best(1, || {
            sample.iter().filter(|p| plan.decode(p).is_ok()).count()
        });
        let scopy = copy.mul_f64(sbytes / bytes.max(1.0));
        figures.push(rate(
            "FleetState generic decode",
            "decode",
            sbytes / 1e6,
            generic_d,
            "MB/s",
            Some(("memcpy of the same bytes", sbytes / 1e6, scopy)),
            &format!("{} messages", sample.len()),
        ));
    }
    Ok(())
}

fn engine_figures(
    path: &str,
    opts: &BenchOptions,
    facts: &mut TraceFacts,
    figures: &mut Vec<Figure>,
) -> Result<(), BenchError> {
    let mut progress =
        crate::progress::Progress::new("engine: decoding the trace into inputs", None);
    let p = engine::prepare(path, opts.tick_ms)?;
    progress.set(p.records);
    progress.finish(&format!(
        "{} records, {} robot updates, {} entities",
        p.records, p.robot_updates, p.entities
    ));
    facts.records = p.records;
    facts.robot_updates = p.robot_updates;
    facts.entities = p.entities;
    let naive = naive::run(&p);
    for workers in [1, 2].into_iter().filter(|_| opts.wants("engine")) {
        let d = engine::throughput(&p, workers)?;
        let note = format!(
            "all registered derived events, {workers} worker(s); naive = recompute every event from the full state every tick"
        );
        figures.push(rate(
            &format!("engine input records ({workers} worker)"),
            "engine",
            p.records as f64,
            d,
            "records/s",
            Some(("naive recompute", p.records as f64, naive)),
            &note,
        ));
        figures.push(rate(
            &format!("engine robot updates ({workers} worker)"),
            "engine",
            p.robot_updates as f64,
            d,
            "updates/s",
            None,
            "robot samples (ROS FleetState robots + fleet-adapter robot states)",
        ));
        figures.push(rate(
            &format!("engine vs real time ({workers} worker)"),
            "engine",
            p.duration_ms as f64 / 1000.0,
            d,
            "x real time",
            None,
            "seconds of site activity processed per second",
        ));
    }
    if opts.wants("engine") {
        let bytes = engine::retained(&p)?;
        figures.push(Figure {
            section: "engine",
            name: "memory per tracked entity".into(),
            value: bytes as f64 / p.entities.max(1) as f64,
            unit: "bytes",
            baseline: None,
            ratio: None,
            better: "lower",
            note: format!(
                "bytes the engine keeps after the whole trace ({:.1} MB) / {} entities (doors, lifts, workcells, robots, fleets, tasks)",
                bytes as f64 / 1e6,
                p.entities
            ),
        });
        if let Some(s) = engine::snapshot(&p)? {
            figures.push(Figure {
                section: "engine",
                name: "snapshot: input held".into(),
                value: s.took_ms as f64,
                unit: "ms",
                baseline: None,
                ratio: None,
                better: "lower",
                note: format!(
                    "the whole state of {} entities, {:.1} MB ({} operator parts); the input waits meanwhile, once per --snapshot-every",
                    p.entities,
                    s.bytes() as f64 / 1e6,
                    s.parts.len()
                ),
            });
        }
    }
    if !opts.wants("latency") {
        return Ok(());
    }
    let limit = if opts.quick { 10_000 } else { 60_000 };
    let (lat, fed) = engine::latency(&p, 1.0, limit)?;
    let note = format!(
        "{} batches over {} s of the trace at real-time rate, {fed} records",
        lat.samples,
        limit / 1000
    );
    for (name, v) in [
        ("p50", lat.p50_ms),
        ("p99", lat.p99_ms),
        ("max", lat.max_ms),
    ] {
        figures.push(Figure {
            section: "engine",
            name: format!("input to complete output latency {name}"),
            value: v,
            unit: "ms",
            baseline: None,
            ratio: None,
            better: "lower",
            note: note.clone(),
        });
    }
    Ok(())
}

/// The sections run on the trace generated here (the soak section makes its own).
const COMMON: [&str; 6] = ["decode", "engine", "latency", "ingest", "fanout", "store"];

/// Runs the benchmark; the traces are generated into `workdir`.
pub fn run(opts: &BenchOptions, workdir: &std::path::Path) -> Result<Report, BenchError> {
    let mut site = if opts.quick {
        BenchSite::Hotel
    } else {
        opts.site
    };
    let duration_ms = if opts.quick {
        30_000
    } else {
        opts.duration.as_millis() as u64
    };
    let mut duration_s = duration_ms as f64 / 1000.0;
    let mut facts = TraceFacts::default();
    let mut figures = Vec::new();
    let common = COMMON.iter().any(|s| opts.wants(s));
    if common {
        common_sections(opts, site, duration_ms, workdir, &mut facts, &mut figures)?;
    }
    let mut soak_rows = None;
    if opts.wants("soak") {
        let s = soak::run(opts, workdir, &mut figures)?;
        if !common {
            (site, duration_s, facts) = (s.site, s.duration_s, s.facts);
        }
        soak_rows = Some(s.rows);
    }
    Ok(Report {
        machine: machine(),
        commit: commit(),
        site,
        duration_s,
        quick: opts.quick,
        trace: facts,
        figures,
        soak: soak_rows,
    })
}

/// The sections that share one generated trace of `site`.
fn common_sections(
    opts: &BenchOptions,
    site: BenchSite,
    duration_ms: u64,
    workdir: &std::path::Path,
    facts: &mut TraceFacts,
    figures: &mut Vec<Figure>,
) -> Result<(), BenchError> {
    let config = site.config(duration_ms);
    let path = workdir.join(format!("bench-{site:?}-{}s.mcap", duration_ms / 1000));
    let report = generate::generate(&config, &path, None)?;
    let path_s = path.display().to_string();
    (facts.messages, facts.bytes) = (report.messages, report.bytes);
    if opts.wants("decode") {
        decode_figures(&path_s, figures)?;
    }
    if opts.wants("engine") || opts.wants("latency") {
        engine_figures(&path_s, opts, facts, figures)?;
    }
    if opts.wants("ingest") {
        live::ingest(&path_s, opts.quick, figures)?;
    }
    if opts.wants("fanout") {
        let (clients, seconds) = if opts.quick {
            (opts.clients.min(100), 20)
        } else {
            (opts.clients, duration_ms / 1000)
        };
        live::fanout(&path_s, clients, 10, seconds, figures)?;
    }
    if opts.wants("store") {
        store::store_figures(&path_s, workdir, figures)?;
    }
    Ok(())
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rmf-dash bench: site {:?}, {:.0} s, commit {}, {} CPUs ({}), {} GB",
            self.site,
            self.duration_s,
            self.commit,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_gb
        )?;
        writeln!(
            f,
            "trace: {} messages, {:.1} MB, {} input records ({} robot updates), {} entities",
            self.trace.messages,
            self.trace.bytes as f64 / 1e6,
            self.trace.records,
            self.trace.robot_updates,
            self.trace.entities
        )?;
        writeln!(
            f,
            "{:<8} {:<46} {:>16} {:<10} {:>16}  {:>8}",
            "section", "figure", "value", "unit", "baseline", "ratio"
        )?;
        for fig in &self.figures {
            let (b, r) = match (&fig.baseline, fig.ratio) {
                (Some(b), Some(r)) => (format!("{:.1}", b.value), format!("{r:.2}x")),
                _ => (String::new(), String::new()),
            };
            writeln!(
                f,
                "{:<8} {:<46} {:>16.1} {:<10} {:>16}  {:>8}",
                fig.section, fig.name, fig.value, fig.unit, b, r
            )?;
        }
        if let Some(rows) = &self.soak {
            soak::write_table(f, rows)?;
        }
        Ok(())
    }
}
