//! `bench` section `soak` (issue 23, "Runs for months"): how memory and the cost of an update grow
//! with a site's age (DESIGN.md invariant 10: they must depend on what is live, never on how long
//! the process has run).
//!
//! How: a long trace of the site (`--soak-hours`, default 4 site hours; `--quick`: the hotel for 3
//! "hours" of one minute) is generated into a temporary MCAP file (or the kept `--soak-trace`
//! file, read again when it exists: of the same site and hours) by a child `rmf-dash trace gen`
//! (the simulator keeps every task it ever made: in this process it would be counted as the
//! engine's memory), replayed at full speed, then removed. The replay is the server's path: the
//! feeder, a real [`Engine`] (default configuration, one worker, a snapshot every 10 s of logical
//! time) and a hub applying every output batch on a thread of its own. The recording is read in
//! chunks of 10 s of site time; each chunk is decoded (CDR) first, then fed, and the time from
//! its first record to its last output applied is what is timed, so decoding does not count and
//! the whole trace is never in memory. With `--soak-store` the same runs a second time with the
//! store writer (the server's output applier, input-log tap and writer, into a private
//! PostgreSQL in the work directory, fsync on); a chunk then ends once it is stored. It is not
//! the default: the store keeps every input (about 0.2 GB per site hour of the 1k site since issue
//! 24), and the variant stops, with a note, when less than 3 GB of disk is left. The trace is not
//! generated either when it would leave less (about 1.3 GB per hour of the 1k site).
//!
//! At the end of every site hour: `RssAnon` and `VmRSS` (`/proc/self/status`; the recording is
//! memory-mapped, so its pages count in `VmRSS`, not in `RssAnon`), the heap bytes allocated since
//! the variant started and still live (the counting allocator of [`super::memory`]), input
//! records/s and robot updates/s over the hour's timed wall time (and records per CPU second of
//! this process in that time, steadier on a shared machine), the engine's census (keys and
//! timer times per keyed operator, `LatestInputs` for its latest-input map), the ended tasks it
//! evicted, and the hub's rooms. Figures: the `RssAnon` and the throughput of every hour against
//! the first hour's, and the two ratios of the issue: `RssAnon` of the last hour / the first
//! (goal <= 1.2) and throughput of the last hour / the first (goal >= 0.9). Note the first hour
//! holds no evicted task yet (the default retention is an hour): it is the warm-up.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;

use rmf_dash_dataflows::model::input::Kind;
use rmf_dash_dataflows::ops::census::Count;
use rmf_dash_dataflows::prelude::Time;

use super::{Baseline, BenchError, BenchOptions, BenchSite, Figure, TraceFacts};
use crate::engine::{Batch, Clock, Engine, EngineConfig};
use crate::hub::Hub;
use crate::ingest::bag::Recording;
use crate::ingest::decode::ReleasePolicy;
use crate::ingest::feed::{Feeder, InputLog, Source as FeedSource, Stamp};
use crate::ingest::source::{Pacing, Replay, Sample, Source as _, SourceError};
use crate::progress::Progress;
use crate::store::local_pg::LocalOptions;
use crate::store::pipeline::{self, Applier};
use crate::store::{LocalPg, StoreError, StoreMetrics, WriterConfig, connect, writer};

/// Site time decoded ahead, then fed and waited for as one timed piece.
const CHUNK_MS: Time = 10_000;
/// The engine's clock tick (`bench` and the server use 10 ms).
const TICK_MS: u64 = 10;
/// A site hour.
const HOUR_MS: Time = 3_600_000;
/// Longest wait for one chunk's outputs (or its storage) before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(600);
/// Rows of the census shown per hour in the table.
const TOP_CENSUS: usize = 4;
/// Free disk left to the machine: the trace is not generated when it would leave less, and the
/// store variant stops (at the end of a chunk) below it.
const KEEP_FREE: u64 = 3 << 30;
/// MCAP bytes per robot and second of site time, for the disk check (a 4 h trace of the 1k site
/// is 5.1 GB: 350 B).
const TRACE_BYTES_PER_ROBOT_S: u64 = 400;

/// What the section runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    site: BenchSite,
    hours: u32,
    hour_ms: Time,
    store: bool,
    /// The engine's `--ended-task-retention` (`None`: ended tasks are kept).
    task_retention_ms: Option<Time>,
}

impl Plan {
    fn new(opts: &BenchOptions) -> Plan {
        if opts.quick {
            Plan {
                site: BenchSite::Hotel,
                hours: 3,
                hour_ms: 60_000,
                store: opts.soak_store,
                task_retention_ms: opts.soak_task_retention_ms,
            }
        } else {
            Plan {
                site: opts.site,
                hours: opts.soak_hours.max(1),
                hour_ms: HOUR_MS,
                store: opts.soak_store,
                task_retention_ms: opts.soak_task_retention_ms,
            }
        }
    }

    fn duration_ms(&self) -> Time {
        self.hour_ms * Time::from(self.hours)
    }
}

/// What a variant holds and does at the end of one site hour.
#[derive(Debug, Clone, Serialize)]
pub struct SoakHour {
    /// `engine` (feeder, engine, hub) or `engine+store` (and the store writer).
    pub variant: &'static str,
    pub hour: u32,
    /// Site time at the end of the hour, in seconds from the trace's start.
    pub site_s: u64,
    pub rss_anon_mb: f64,
    pub vm_rss_mb: f64,
    /// Heap allocated since the variant started and still live (`None`: the counting allocator
    /// is not installed in this binary).
    pub heap_mb: Option<f64>,
    /// Engine input records and robot updates of the hour.
    pub records: u64,
    pub robot_updates: u64,
    /// Timed wall time of the hour: feeding and waiting for the outputs (decoding excluded).
    pub busy_s: f64,
    pub inputs_per_s: f64,
    pub robot_updates_per_s: f64,
    /// CPU time of this process (every thread) within the timed wall time, and the input records
    /// per CPU second: steadier than the wall-time rate on a shared machine.
    pub cpu_s: f64,
    pub inputs_per_cpu_s: f64,
    /// The machine's 1-minute load average at the end of the hour (other work skews the rates).
    pub load1: Option<f64>,
    /// Ended tasks evicted so far.
    pub evicted: u64,
    /// The hub's rooms, and the final values of retired rooms it keeps.
    pub rooms: usize,
    pub archived: usize,
    /// Keys and timer times per keyed operator (`LatestInputs`: the engine's latest inputs).
    pub census: BTreeMap<String, Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreHour>,
}

/// The store writer at the end of an hour (variant `engine+store`).
#[derive(Debug, Clone, Serialize)]
pub struct StoreHour {
    pub rows_written: u64,
    pub dropped_rows: u64,
    pub database_mb: Option<f64>,
}

/// What the section gives the report.
pub struct Soak {
    pub rows: Vec<SoakHour>,
    pub facts: TraceFacts,
    pub site: BenchSite,
    pub duration_s: f64,
}

/// Generates the trace, runs the variants, removes the trace; pushes the figures.
pub fn run(
    opts: &BenchOptions,
    workdir: &Path,
    figures: &mut Vec<Figure>,
) -> Result<Soak, BenchError> {
    let plan = Plan::new(opts);
    let kept = opts.soak_trace.clone();
    let path = kept.clone().unwrap_or_else(|| {
        workdir.join(format!(
            "soak-{:?}-{}s.mcap",
            plan.site,
            plan.duration_ms() / 1000
        ))
    });
    let started = Instant::now();
    let how = if path.exists() && kept.is_some() {
        Ok("earlier (--soak-trace)")
    } else {
        check_disk(&plan, workdir)?;
        generate_trace(plan.site, plan.duration_ms(), &path)
    };
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let gen_s = started.elapsed().as_secs_f64();
    eprintln!(
        "soak: trace of {} s of the {:?} site ({}), {:.2} GB, generated {} in {gen_s:.0} s; ended tasks leave the engine {}",
        plan.duration_ms() / 1000,
        plan.site,
        path.display(),
        bytes as f64 / 1e9,
        how.as_ref().map_or("(failed)", |h| *h),
        plan.task_retention_ms
            .map_or("never".to_string(), |ms| format!(
                "{} s after they end",
                ms / 1000
            ))
    );
    let ran = how.and_then(|_| run_variants(&plan, &path, workdir));
    if kept.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let variants = ran?;
    let mut facts = TraceFacts {
        bytes,
        ..TraceFacts::default()
    };
    let mut rows = Vec::new();
    for v in variants {
        push_figures(&v, gen_s, figures);
        if v.name == "engine" {
            facts.messages = v.messages;
            facts.records = v.rows.iter().map(|r| r.records).sum();
            facts.robot_updates = v.rows.iter().map(|r| r.robot_updates).sum();
        }
        rows.extend(v.rows);
    }
    Ok(Soak {
        rows,
        facts,
        site: plan.site,
        duration_s: plan.duration_ms() as f64 / 1000.0,
    })
}

/// One variant's run.
struct Variant {
    name: &'static str,
    rows: Vec<SoakHour>,
    messages: u64,
    wall: Duration,
    /// Stopped during this hour: the disk was nearly full (store variant).
    cut: Option<u32>,
    /// Messages of the trace that did not decode (skipped, as a replay does).
    undecoded: u64,
}

/// Refuses to generate a trace that would leave less than [`KEEP_FREE`] on the disk.
fn check_disk(plan: &Plan, workdir: &Path) -> Result<(), BenchError> {
    let robots = plan.site.config(0).robots() as u64;
    let need = robots * plan.duration_ms() / 1000 * TRACE_BYTES_PER_ROBOT_S;
    match free_bytes(workdir) {
        Some(free) if free < need + KEEP_FREE => Err(std::io::Error::other(format!(
            "soak: the trace needs about {:.1} GB in {}, {:.1} GB are free: give --workdir elsewhere or fewer --soak-hours",
            need as f64 / 1e9,
            workdir.display(),
            free as f64 / 1e9
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Free bytes of the file system holding `path` (for an unprivileged user).
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs buffer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail * st.f_frsize)
}

fn run_variants(plan: &Plan, path: &Path, workdir: &Path) -> Result<Vec<Variant>, BenchError> {
    let mut out = vec![run_variant(plan, path, None)?];
    if plan.store {
        let dir = workdir.join("soak-pg");
        match run_variant(plan, path, Some(&dir)) {
            Err(BenchError::Store(
                e @ (StoreError::NoServerBinaries | StoreError::Local { .. }),
            )) => {
                tracing::warn!("soak with the store skipped: {e}");
            }
            v => out.push(v?),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(out)
}

/// Writes the trace of `site` to `path`: in a child `rmf-dash trace gen` when this binary is
/// rmf-dash (the simulator's memory stays out of the measure), else here. Says which.
fn generate_trace(
    site: BenchSite,
    duration_ms: Time,
    path: &Path,
) -> Result<&'static str, BenchError> {
    let exe = std::env::current_exe()
        .ok()
        .filter(|e| e.file_stem().is_some_and(|s| s == "rmf-dash"));
    let Some(exe) = exe else {
        crate::trace::generate::generate(&site.config(duration_ms), path, None)?;
        return Ok("in this process");
    };
    let status = std::process::Command::new(exe)
        .args(gen_args(site, duration_ms, path))
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("rmf-dash trace gen: {status}")).into());
    }
    Ok("by a child rmf-dash trace gen")
}

/// The `trace gen` arguments of [`BenchSite::config`].
fn gen_args(site: BenchSite, duration_ms: Time, path: &Path) -> Vec<OsString> {
    let preset = match site {
        BenchSite::Office => "office",
        BenchSite::Hotel => "hotel",
        BenchSite::Airport => "airport",
        BenchSite::Site1k | BenchSite::Site10k => "site",
    };
    let mut args: Vec<OsString> = ["trace", "gen", "--no-ws", "--seed", "7", "--preset", preset]
        .map(OsString::from)
        .into();
    args.extend(["--duration".into(), format!("{duration_ms}ms").into()]);
    if site == BenchSite::Site10k {
        let more = [
            "--fleets",
            "500",
            "--robots-per-fleet",
            "20",
            "--levels",
            "10",
        ];
        args.extend(more.map(OsString::from));
    }
    args.extend(["-o".into(), path.as_os_str().to_owned()]);
    args
}

/// Stops the counting allocator when a variant ends, however it ends.
struct Counting;

impl Counting {
    /// Starts counting; `None` when the counting allocator is not installed.
    fn start() -> (Counting, bool) {
        super::memory::start();
        let before = super::memory::live();
        let probe: Vec<u8> = Vec::with_capacity(1 << 20);
        std::hint::black_box(&probe);
        let counted = super::memory::live() - before >= 1 << 20;
        drop(probe);
        (Counting, counted)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        super::memory::stop();
    }
}

/// Replays the trace through one variant (`store`: the private PostgreSQL's directory).
fn run_variant(plan: &Plan, path: &Path, store: Option<&Path>) -> Result<Variant, BenchError> {
    let name = if store.is_some() {
        "engine+store"
    } else {
        "engine"
    };
    let mut reader = Reader::open(path)?;
    let t0 = reader.first_time()?.unwrap_or(0);
    let started = Instant::now();
    let (_counting, heap) = Counting::start();
    let mut run = match store {
        Some(dir) => Run::with_store(dir, plan)?,
        None => Run::bare(plan)?,
    };
    let (mut rows, mut cut) = (Vec::new(), None);
    for hour in 1..=plan.hours {
        let what = format!("soak {name}: site hour {hour}/{}", plan.hours);
        let mut progress = Progress::new(what, Some(plan.hour_ms / CHUNK_MS));
        let before = run.counts.get();
        let Some(busy) = run.feed_hour(&mut reader, plan, (t0, hour), &mut progress)? else {
            progress.finish("stopped: less than 3 GB of free disk");
            cut = Some(hour);
            break;
        };
        let at = HourEnd {
            name,
            hour,
            site_s: Time::from(hour) * plan.hour_ms / 1000,
            busy,
            before,
            heap,
        };
        let row = run.measure(&at);
        progress.finish(&summary(&row, started.elapsed()));
        rows.push(row);
    }
    run.finish()?;
    Ok(Variant {
        name,
        rows,
        messages: reader.messages,
        wall: started.elapsed(),
        cut,
        undecoded: reader.dropped,
    })
}

/// The hour's progress line.
fn summary(r: &SoakHour, wall: Duration) -> String {
    format!(
        "RssAnon {:.0} MB, VmRSS {:.0} MB, heap {}, {:.0} inputs/s ({:.0} per CPU s), {:.0} robot updates/s, {} evicted, {} rooms; {:.0} s since the start;",
        r.rss_anon_mb,
        r.vm_rss_mb,
        r.heap_mb.map_or("-".into(), |h| format!("{h:.0} MB")),
        r.inputs_per_s,
        r.inputs_per_cpu_s,
        r.robot_updates_per_s,
        r.evicted,
        r.rooms,
        wall.as_secs_f64()
    )
}

/// The recording, read a chunk of site time at a time, decoded (CDR) ahead of the feeding.
struct Reader {
    source: Replay,
    /// The first sample of the next chunk.
    next: Option<Sample>,
    messages: u64,
    dropped: u64,
    /// The latest logical time read.
    last: Time,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader, BenchError> {
        let recording = Recording::open(path)?;
        Ok(Reader {
            source: Replay::new(recording, ReleasePolicy::default(), Pacing::Max),
            next: None,
            messages: 0,
            dropped: 0,
            last: 0,
        })
    }

    /// The next sample; undecodable messages are counted and skipped (as a replay does).
    fn pull(&mut self) -> Result<Option<Sample>, BenchError> {
        if let Some(s) = self.next.take() {
            return Ok(Some(s));
        }
        loop {
            match self.source.next_sample() {
                None => return Ok(None),
                Some(Ok(s)) => {
                    self.messages += 1;
                    return Ok(Some(s));
                }
                Some(Err(SourceError::Bag(e))) => return Err(e.into()),
                Some(Err(e)) => {
                    self.dropped += 1;
                    tracing::debug!("soak: dropped {}", crate::error::chain(&e));
                }
            }
        }
    }

    /// The logical time of the first sample.
    fn first_time(&mut self) -> Result<Option<Time>, BenchError> {
        let s = self.pull()?;
        let t = s.as_ref().map(|s| Clock::logical(s.log_time, TICK_MS));
        self.next = s;
        Ok(t)
    }

    /// The samples of a logical time before `end` (all those left with `None`).
    fn chunk(&mut self, end: Option<Time>) -> Result<Vec<Sample>, BenchError> {
        let mut out = Vec::new();
        while let Some(s) = self.pull()? {
            let t = Clock::logical(s.log_time, TICK_MS);
            if end.is_some_and(|e| t >= e) {
                self.next = Some(s);
                break;
            }
            self.last = self.last.max(t);
            out.push(s);
        }
        Ok(out)
    }
}

/// Input records and robot updates the engine was given (the feeder's input-log tap).
#[derive(Debug, Default)]
struct Counts {
    records: AtomicU64,
    robot_updates: AtomicU64,
}

impl Counts {
    fn get(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.robot_updates.load(Ordering::Relaxed),
        )
    }
}

/// Counts every engine command's inputs, then passes them on to `then` (the store's input log).
fn tap(counts: Arc<Counts>, mut then: Option<InputLog>) -> InputLog {
    Box::new(move |time, inputs| {
        let robots = inputs
            .iter()
            .filter(|((kind, _), _)| matches!(kind, Kind::Robot(_)))
            .count();
        counts
            .records
            .fetch_add(inputs.len() as u64, Ordering::Relaxed);
        counts
            .robot_updates
            .fetch_add(robots as u64, Ordering::Relaxed);
        if let Some(f) = &mut then {
            f(time, inputs);
        }
    })
}

/// The store side of the `engine+store` variant.
struct StoreSide {
    runtime: tokio::runtime::Runtime,
    metrics: Arc<StoreMetrics>,
    writer: Option<tokio::task::JoinHandle<()>>,
    /// For the database's size.
    client: tokio_postgres::Client,
    pg: LocalPg,
    /// The cluster's directory (its disk is watched).
    dir: std::path::PathBuf,
}

/// The engine and what takes its output.
struct Run {
    feeder: Feeder,
    hub: Arc<Hub>,
    /// Every output of a time before this one is applied to the hub (without a store).
    applied: Arc<AtomicU64>,
    applier: std::thread::JoinHandle<()>,
    counts: Arc<Counts>,
    store: Option<StoreSide>,
}

fn engine_config(plan: &Plan) -> EngineConfig {
    EngineConfig {
        snapshot_every_ms: Some(crate::engine::DEFAULT_SNAPSHOT_EVERY_S * 1000),
        task_retention_ms: plan.task_retention_ms,
        ..EngineConfig::default()
    }
}

fn no_output() -> BenchError {
    std::io::Error::other("the engine gives no output (not process 0)").into()
}

/// Applies every output batch to the hub; `applied` follows the engine's output frontier as
/// loaded before the batches below it were drained.
fn spawn_hub(
    mut outputs: UnboundedReceiver<Batch>,
    hub: Arc<Hub>,
    delivered: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("soak-hub".into())
        .spawn(move || {
            loop {
                let frontier = delivered.load(Ordering::Acquire);
                let mut idle = true;
                loop {
                    match outputs.try_recv() {
                        Ok(b) => {
                            hub.apply(&b);
                            idle = false;
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
                applied.store(frontier, Ordering::Release);
                if idle {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        })
}

/// The end of an hour, as [`Run::measure`] reports it.
struct HourEnd {
    name: &'static str,
    hour: u32,
    site_s: u64,
    busy: Busy,
    /// Counts at the hour's start.
    before: (u64, u64),
    heap: bool,
}

impl Run {
    /// Feeder, engine and hub.
    fn bare(plan: &Plan) -> Result<Run, BenchError> {
        let mut engine = Engine::start(engine_config(plan))?;
        let outputs = engine.take_outputs().ok_or_else(no_output)?;
        let hub = Arc::new(Hub::new());
        let applied = Arc::new(AtomicU64::new(0));
        let delivered = engine.delivered.clone();
        let applier = spawn_hub(outputs, hub.clone(), delivered, applied.clone())?;
        let counts = Arc::new(Counts::default());
        let mut feeder = Feeder::new(engine, TICK_MS, true);
        feeder.set_input_log(tap(counts.clone(), None));
        Ok(Run {
            feeder,
            hub,
            applied,
            applier,
            counts,
            store: None,
        })
    }

    /// The server's store path: output applier (hub, then writer), input-log tap, writer, into a
    /// private PostgreSQL in `dir`.
    fn with_store(dir: &Path, plan: &Plan) -> Result<Run, BenchError> {
        let _ = std::fs::remove_dir_all(dir);
        let pg = LocalPg::start(dir, LocalOptions::default())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let url = pg.url().to_string();
        let (client, writer_client) = runtime.block_on(async {
            let (client, _) = pipeline::open(&url).await?;
            Ok::<_, StoreError>((client, connect(&url).await?))
        })?;
        let (handle, writer) = {
            let _in = runtime.enter();
            writer::spawn(WriterConfig::new(url), writer_client, None)
        };
        let mut engine = Engine::start(engine_config(plan))?;
        let outputs = engine.take_outputs().ok_or_else(no_output)?;
        let hub = Arc::new(Hub::new());
        let applier = Applier {
            hub: hub.clone(),
            store: Some(handle.clone()),
            delivered: engine.delivered.clone(),
            horizon: None,
            on_batch: None,
            snapshots: engine.take_snapshots(),
            running: None,
        };
        let applier = pipeline::spawn_applier(outputs, applier, runtime.handle().clone())?;
        let counts = Arc::new(Counts::default());
        let metrics = handle.metrics.clone();
        let mut feeder = Feeder::new(engine, TICK_MS, true);
        feeder.set_input_log(tap(counts.clone(), Some(pipeline::input_log(handle))));
        let store = StoreSide {
            runtime,
            metrics,
            writer: Some(writer),
            client,
            pg,
            dir: dir.to_path_buf(),
        };
        Ok(Run {
            feeder,
            hub,
            applied: Arc::default(),
            applier,
            counts,
            store: Some(store),
        })
    }

    /// Feeds site hour `hour` of the trace starting at `t0` (with the rest of the trace after
    /// the last hour); the timed wall time, or `None` when the store variant stopped because the
    /// free disk fell below [`KEEP_FREE`].
    fn feed_hour(
        &mut self,
        reader: &mut Reader,
        plan: &Plan,
        (t0, hour): (Time, u32),
        progress: &mut Progress,
    ) -> Result<Option<Busy>, BenchError> {
        let per_hour = (plan.hour_ms / CHUNK_MS).max(1);
        let mut busy = Busy::default();
        for c in 1..=per_hour {
            let dir = self.store.as_ref().map(|s| s.dir.as_path());
            if dir
                .and_then(free_bytes)
                .is_some_and(|free| free < KEEP_FREE)
            {
                return Ok(None);
            }
            let k = Time::from(hour - 1) * per_hour + c;
            let last = hour == plan.hours && c == per_hour;
            let end = t0 + k * CHUNK_MS;
            let samples = reader.chunk((!last).then_some(end))?;
            let end = if last { end.max(reader.last + 1) } else { end };
            let took = self.feed(samples, end)?;
            busy.wall += took.wall;
            busy.cpu += took.cpu;
            progress.inc(1);
        }
        Ok(Some(busy))
    }

    /// Feeds a chunk, moves logical time to `end` (no record of the next chunk is before it) and
    /// waits until every output before `end` is applied (or stored); returns the time taken.
    fn feed(&mut self, samples: Vec<Sample>, end: Time) -> Result<Busy, BenchError> {
        let (start, cpu) = (Instant::now(), cpu_time());
        for s in &samples {
            self.feeder
                .record(&s.record, Stamp::Recorded(s.log_time), FeedSource::Replay)?;
        }
        self.feeder.advance(end)?;
        self.wait(end)?;
        let took = Busy {
            wall: start.elapsed(),
            cpu: cpu_time().saturating_sub(cpu),
        };
        drop(samples);
        Ok(took)
    }

    fn wait(&self, end: Time) -> Result<(), BenchError> {
        let late = || std::io::Error::other(format!("no output up to {end} after {WAIT_LIMIT:?}"));
        if let Some(s) = &self.store {
            let stored = s
                .runtime
                .block_on(s.metrics.stored_up_to(end.saturating_sub(1), WAIT_LIMIT));
            return if stored { Ok(()) } else { Err(late().into()) };
        }
        let deadline = Instant::now() + WAIT_LIMIT;
        while self.applied.load(Ordering::Acquire) < end {
            if Instant::now() > deadline {
                return Err(late().into());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(())
    }

    /// What the process holds and did at the end of an hour.
    fn measure(&self, at: &HourEnd) -> SoakHour {
        let (records, robots) = self.counts.get();
        let (records, robot_updates) = (records - at.before.0, robots - at.before.1);
        let busy_s = at.busy.wall.as_secs_f64().max(1e-9);
        let cpu_s = at.busy.cpu.as_secs_f64().max(1e-9);
        let engine = self.feeder.engine();
        let mb = |kb: Option<u64>| kb.unwrap_or(0) as f64 / 1024.0;
        SoakHour {
            variant: at.name,
            hour: at.hour,
            site_s: at.site_s,
            rss_anon_mb: mb(status_kb("RssAnon")),
            vm_rss_mb: mb(status_kb("VmRSS")),
            heap_mb: at.heap.then(|| super::memory::live() as f64 / 1048576.0),
            records,
            robot_updates,
            busy_s,
            inputs_per_s: records as f64 / busy_s,
            robot_updates_per_s: robot_updates as f64 / busy_s,
            cpu_s,
            inputs_per_cpu_s: records as f64 / cpu_s,
            load1: load_average(),
            evicted: engine.evicted.load(Ordering::Relaxed),
            rooms: self.hub.sizes().0,
            archived: self.hub.archived(),
            census: engine.census.totals(),
            store: self.store.as_ref().map(StoreSide::hour),
        }
    }

    /// Completes every output, stops the engine, the hub thread and the writer (after it has
    /// written everything) and the private PostgreSQL.
    fn finish(self) -> Result<(), BenchError> {
        let Run {
            feeder,
            applier,
            store,
            ..
        } = self;
        feeder.finish()?;
        let _ = applier.join();
        if let Some(mut s) = store {
            if let Some(w) = s.writer.take() {
                let _ = s.runtime.block_on(w);
            }
            drop(s.client);
            drop(s.pg);
        }
        Ok(())
    }
}

impl StoreSide {
    fn hour(&self) -> StoreHour {
        let size = self.runtime.block_on(
            self.client
                .query_one("SELECT pg_database_size(current_database())", &[]),
        );
        StoreHour {
            rows_written: self.metrics.rows_written.load(Ordering::Relaxed),
            dropped_rows: self.metrics.dropped_rows.load(Ordering::Relaxed),
            database_mb: size
                .ok()
                .and_then(|r| r.try_get::<_, i64>(0).ok())
                .map(|b| b as f64 / 1048576.0),
        }
    }
}

/// Wall and CPU time of timed work.
#[derive(Debug, Clone, Copy, Default)]
struct Busy {
    wall: Duration,
    cpu: Duration,
}

/// User and system CPU time of this process, every thread.
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is a writable rusage buffer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded, so it filled `ru`.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A `kB` field of `/proc/self/status` (Linux).
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A figure of `hour` against the first hour.
fn hour_figure(
    name: String,
    value: f64,
    unit: &'static str,
    first: f64,
    better: &'static str,
    note: String,
) -> Figure {
    Figure {
        section: "soak",
        name,
        value,
        unit,
        baseline: Some(Baseline {
            name: "the first site hour".into(),
            value: first,
        }),
        ratio: Some(value / first.max(1e-9)),
        better,
        note,
    }
}

/// The figures of one variant: RssAnon and throughput per hour, and the two ratios.
fn push_figures(v: &Variant, gen_s: f64, figures: &mut Vec<Figure>) {
    let (variant, rows) = (v.name, &v.rows);
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return;
    };
    let rss = |name: String, r: &SoakHour, note| {
        hour_figure(name, r.rss_anon_mb, "MB", first.rss_anon_mb, "lower", note)
    };
    let rate = |name: String, r: &SoakHour, note| {
        let first = first.inputs_per_s;
        hour_figure(name, r.inputs_per_s, "records/s", first, "higher", note)
    };
    for r in rows {
        let heap = r.heap_mb.map_or("-".into(), |h| format!("{h:.0} MB"));
        let note = format!(
            "site time {} s; VmRSS {:.0} MB, heap {heap}",
            r.site_s, r.vm_rss_mb
        );
        figures.push(rss(format!("{variant} hour {}: RssAnon", r.hour), r, note));
        let note = format!(
            "{:.0} robot updates/s; {:.0} records per CPU second; load average {}",
            r.robot_updates_per_s,
            r.inputs_per_cpu_s,
            r.load1.map_or("-".into(), |l| format!("{l:.1}"))
        );
        figures.push(rate(
            format!("{variant} hour {}: input records", r.hour),
            r,
            note,
        ));
    }
    let met = |ok: bool| if ok { "met" } else { "missed" };
    let grew = last.rss_anon_mb / first.rss_anon_mb.max(1e-9);
    let cut = v.cut.map_or(String::new(), |h| {
        format!(" (stopped in hour {h}: the disk was nearly full)")
    });
    let note = format!(
        "goal <= 1.2: {}; {} site hours{cut}; replay {:.0} s ({} messages undecoded), trace generated in {gen_s:.0} s",
        met(grew <= 1.2),
        rows.len(),
        v.wall.as_secs_f64(),
        v.undecoded
    );
    figures.push(rss(
        format!("{variant}: RssAnon, last hour vs first"),
        last,
        note,
    ));
    let speed = last.inputs_per_s / first.inputs_per_s.max(1e-9);
    let per_cpu = last.inputs_per_cpu_s / first.inputs_per_cpu_s.max(1e-9);
    let note = format!(
        "goal >= 0.9: {}; per CPU second: {per_cpu:.2}x",
        met(speed >= 0.9)
    );
    figures.push(rate(
        format!("{variant}: throughput, last hour vs first"),
        last,
        note,
    ));
}

/// The largest census entries of an hour, by keys.
fn top_census(census: &BTreeMap<String, Count>) -> String {
    let mut v: Vec<_> = census.iter().collect();
    v.sort_by(|a, b| b.1.keys.cmp(&a.1.keys).then(a.0.cmp(b.0)));
    v.iter()
        .take(TOP_CENSUS)
        .map(|(n, c)| format!("{n}={}/{}", c.keys, c.timer_times))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Census entries that grew by more than 10 % (and 10) from `a` to `b`.
fn grown(a: &SoakHour, b: &SoakHour) -> String {
    let grew = |x: usize, y: usize| y > x + 10 && y * 10 > x * 11;
    let v: Vec<String> = b
        .census
        .iter()
        .filter_map(|(n, c)| {
            let o = a.census.get(n).copied().unwrap_or_default();
            (grew(o.keys, c.keys) || grew(o.timer_times, c.timer_times)).then(|| {
                format!(
                    "{n} keys {}->{} timers {}->{}",
                    o.keys, c.keys, o.timer_times, c.timer_times
                )
            })
        })
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The table's header.
const HEADER: &str = "soak: variant      hour  site s  RssAnon    VmRSS  heap MB   inputs/s in/CPU s   robots/s  load  evicted   rooms    db MB  top census (keys/timer times)";

/// One hour's line of the table (memory in MB).
fn row_line(r: &SoakHour) -> String {
    let heap = r.heap_mb.map_or("-".into(), |h| format!("{h:.0}"));
    let db = r
        .store
        .as_ref()
        .and_then(|s| s.database_mb)
        .map_or("-".into(), |d| format!("{d:.0}"));
    format!(
        "soak: {:<12} {:>4} {:>7} {:>8.0} {:>8.0} {:>8} {:>10.0} {:>8.0} {:>10.0} {:>5} {:>8} {:>7} {:>8}  {}",
        r.variant,
        r.hour,
        r.site_s,
        r.rss_anon_mb,
        r.vm_rss_mb,
        heap,
        r.inputs_per_s,
        r.inputs_per_cpu_s,
        r.robot_updates_per_s,
        r.load1.map_or("-".into(), |l| format!("{l:.1}")),
        r.evicted,
        r.rooms,
        db,
        top_census(&r.census)
    )
}

/// The per-hour table of every variant, and the census entries that grew from the first hour
/// and from the second (after the warm-up hour) to the last.
pub fn write_table(f: &mut std::fmt::Formatter<'_>, rows: &[SoakHour]) -> std::fmt::Result {
    writeln!(f, "{HEADER}")?;
    for r in rows {
        writeln!(f, "{}", row_line(r))?;
    }
    for variant in ["engine", "engine+store"] {
        let v: Vec<&SoakHour> = rows.iter().filter(|r| r.variant == variant).collect();
        let Some(last) = v.last() else { continue };
        for from in v.iter().take(2).filter(|a| a.hour < last.hour) {
            let (a, b, grew) = (from.hour, last.hour, grown(from, last));
            writeln!(f, "soak: {variant}: census grown hour {a} -> {b}: {grew}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Gen {
        #[command(flatten)]
        site: crate::trace::generate::SiteArgs,
        #[arg(short = 'o')]
        output: std::path::PathBuf,
        #[arg(long)]
        no_ws: bool,
    }

    /// The child's trace is the one `bench` generates for the site.
    #[test]
    fn gen_args_give_the_bench_site() {
        for site in [
            BenchSite::Office,
            BenchSite::Hotel,
            BenchSite::Airport,
            BenchSite::Site1k,
            BenchSite::Site10k,
        ] {
            let args = gen_args(site, 7_200_000, Path::new("/tmp/x.mcap"));
            let parsed =
                Gen::try_parse_from(std::iter::once("gen".into()).chain(args.into_iter().skip(2)));
            let Ok(parsed) = parsed else {
                panic!("{site:?}: arguments not parsed");
            };
            let (a, b) = (parsed.site.config(), site.config(7_200_000));
            let Ok(a) = a else {
                panic!("{site:?}: invalid config")
            };
            assert_eq!(a.fleet_sizes, b.fleet_sizes, "{site:?}");
            assert_eq!(a.fleet_names, b.fleet_names, "{site:?}");
            assert_eq!(a.door_names, b.door_names, "{site:?}");
            assert_eq!(
                (
                    a.doors,
                    a.lifts,
                    a.levels,
                    a.duration_ms,
                    a.seed,
                    a.fleet_hz
                ),
                (
                    b.doors,
                    b.lifts,
                    b.levels,
                    b.duration_ms,
                    b.seed,
                    b.fleet_hz
                ),
                "{site:?}"
            );
            assert!(parsed.no_ws && parsed.output == Path::new("/tmp/x.mcap"));
        }
    }

    #[test]
    fn status_fields_are_read() {
        assert!(status_kb("VmRSS").is_some_and(|kb| kb > 0));
        assert!(status_kb("RssAnon").is_some());
        assert!(status_kb("NoSuchField").is_none());
    }
}
