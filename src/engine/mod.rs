//! The engine host: runs the dataflows of `rmf-dash-dataflows` on dedicated timely worker threads
//! (never inside tokio), feeds them from any thread through a channel, and delivers their output
//! as complete-time batches.
//!
//! - [`worker`]: what the workers do (inputs as upserts keyed by entity on the first worker,
//!   snapshots); [`sink`]: the output operator; [`clock`]: logical time, milliseconds rounded
//!   up to the tick ([`Engine::advance`] moves time on when no data arrives, so timeouts fire).
//! - Output ([`Batch`]): every change of time `t`, once the frontier has passed `t`, retractions
//!   first; from the first worker of process 0 only.
//! - A panicking worker does not stop the process: [`recovery`] rebuilds the engine in place
//!   without the input that caused it, which is quarantined ([`crate::quarantine`]); only when it
//!   cannot (no recovery point, see there) does the process stop, with exit code 70.
//! - Snapshots (`EngineConfig::snapshot_every_ms`, one process only): the state as of a time
//!   `S` ([`Snapshot`]); the latest is the recovery point, and they go to the store when
//!   [`Engine::take_snapshots`] is called; [`Engine::start_restored`] starts from one (see
//!   `ops::snapshot`).
//! - [`fault`]: the test-only fault injection that proves the recovery.

pub mod clock;
pub mod fault;
mod generation;
mod latest;
mod recovery;
mod sink;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc;

use thiserror::Error;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use rmf_dash_dataflows::derived::{self, Output};
use rmf_dash_dataflows::model::input::Input;
use rmf_dash_dataflows::ops::census::Census;
use rmf_dash_dataflows::ops::snapshot::{self, Snapshot};
use rmf_dash_dataflows::prelude::*;

pub use clock::Clock;
pub use recovery::EXIT_ENGINE;

use crate::metrics::{Kind, Metrics};
use crate::quarantine::{Origin, Quarantine};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("starting timely: {0}")]
    Start(String),
    #[error("reading the cluster host list {path}: {message}")]
    Hosts { path: String, message: String },
    #[error("the engine has stopped")]
    Stopped,
    #[error("the snapshot does not fit this engine: {0}")]
    Restore(String),
}

/// How to run the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads in this process.
    pub workers: usize,
    pub derived: derived::Config,
    /// Joining a timely cluster: this process's index and every process's `host:port`.
    pub cluster: Option<(usize, Vec<String>)>,
    /// Snapshot period in logical ms (`None`: no snapshots, hence no in-place recovery after a
    /// worker panic; never in a cluster).
    pub snapshot_every_ms: Option<Time>,
    /// Inputs kept since the latest snapshot for an in-place rebuild after a worker panic: at
    /// this many, a snapshot is taken at the next time (`--recovery-inputs`).
    pub recovery_inputs: usize,
    /// Where inputs that made a worker panic are recorded and skipped (shared by the clones of
    /// this configuration).
    pub quarantine: Arc<Quarantine>,
    /// How long an ended task stays in the engine after it ended (logical ms; `None`: for
    /// ever): then its latest state is retracted and every operator forgets it
    /// (`--ended-task-retention`).
    pub task_retention_ms: Option<Time>,
}

impl EngineConfig {
    /// What a snapshot must have been taken with to be loaded: the dataflows' sources and
    /// configuration, and the worker count.
    pub fn fingerprint(&self) -> String {
        format!(
            "{} workers={} {:?} task_retention_ms={:?}{}",
            snapshot::SOURCE_HASH,
            self.workers.max(1),
            self.derived,
            self.task_retention_ms,
            fault::fingerprint()
        )
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            derived: derived::Config::default(),
            cluster: None,
            snapshot_every_ms: None,
            recovery_inputs: DEFAULT_RECOVERY_INPUTS,
            quarantine: Arc::default(),
            task_retention_ms: Some(DEFAULT_TASK_RETENTION_MS),
        }
    }
}

/// Reads a timely host list: one `host:port` per line, `#` comments and blank lines ignored.
pub fn read_hosts(path: &str) -> Result<Vec<String>, EngineError> {
    let err = |message: String| EngineError::Hosts {
        path: path.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let hosts: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if hosts.is_empty() {
        return Err(err("no host:port line".into()));
    }
    if let Some(bad) = hosts.iter().find(|h| {
        h.rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    }) {
        return Err(err(format!("{bad:?} is not host:port")));
    }
    Ok(hosts)
}

/// How many input commands may wait for the workers before senders block.
pub const COMMAND_BACKLOG: usize = 256;

/// Default snapshot period (`--snapshot-every`, seconds of logical time): it bounds the input
/// log a restart feeds. A 10,000-robot site logs about 115,000 inputs a second, which the
/// engine rebuilds at about 500,000 a second on one core: 10 s of tail is about 2 s. Its
/// snapshot (23 MB) holds the input about 20 ms.
pub const DEFAULT_SNAPSHOT_EVERY_S: u64 = 10;

/// Default of `--recovery-inputs`: a 10,000-robot site sends about 115,000 inputs a second, so
/// the tail kept between snapshots is then at most about 9 s of its inputs (the inputs share
/// their payloads with the engine's state: about 100 MB).
pub const DEFAULT_RECOVERY_INPUTS: usize = 1_000_000;

/// Default of `--ended-task-retention`: an hour after a task ended, it leaves memory (the
/// store keeps it).
pub const DEFAULT_TASK_RETENTION_MS: Time = 3_600_000;

/// What the engine holds, for `/metrics`: the keyed operators' census and the ended tasks
/// evicted (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub census: Arc<Census>,
    pub evicted: Arc<AtomicU64>,
}

impl Held {
    /// What the keyed operators hold, and the tasks evicted (`/metrics`).
    pub fn write_metrics(&self, m: &mut Metrics) {
        let totals = self.census.totals();
        m.by(
            "rmf_dash_engine_keys",
            "Keys held by each keyed operator of the engine (summed over workers; LatestInputs: the engine's latest input per key).",
            Kind::Gauge,
            "operator",
            totals.iter().map(|(op, count)| (op, count.keys as u64)),
        );
        m.by(
            "rmf_dash_engine_timer_times",
            "Distinct times with a timer scheduled, by keyed operator.",
            Kind::Gauge,
            "operator",
            totals
                .iter()
                .map(|(op, count)| (op, count.timer_times as u64)),
        );
        m.counter(
            "rmf_dash_engine_tasks_evicted_total",
            "Ended tasks that left the engine (--ended-task-retention after they ended).",
            self.evicted.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
}

/// All changes of one logical time, retractions first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub time: Time,
    pub changes: Vec<(Output, Diff)>,
}

enum Command {
    Input(Time, Vec<Input>, Origin),
    Advance(Time),
    /// A snapshot at the current time now (see [`Engine::snapshot_now`]).
    Snapshot,
    Finish(Time),
}

/// A handle to the running engine.
pub struct Engine {
    commands: mpsc::SyncSender<Command>,
    /// The live generation's worker threads.
    wake: Arc<parking_lot::Mutex<Vec<std::thread::Thread>>>,
    /// Runs the workers, rebuilds them after a panic; ends with the last generation.
    supervisor: Option<std::thread::JoinHandle<()>>,
    outputs: Option<UnboundedReceiver<Batch>>,
    snapshots: Option<UnboundedReceiver<Snapshot>>,
    export_snapshots: Arc<AtomicBool>,
    /// Every output of a logical time before this one has been delivered (the output frontier).
    pub delivered: Arc<AtomicU64>,
    /// Records received so far.
    pub inputs: Arc<AtomicU64>,
    /// Whether this process delivers output (process 0 of a cluster).
    pub delivers: bool,
    quarantine: Arc<Quarantine>,
    /// What the keyed operators hold (`/metrics`, `bench --only soak`).
    pub census: Arc<Census>,
    /// Ended tasks evicted so far.
    pub evicted: Arc<AtomicU64>,
}

impl Engine {
    /// Starts the workers.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        Self::launch(config, None)
    }

    /// Starts the workers from `snapshot`: every operator state and the latest inputs as of
    /// its time `S` (feed the inputs after `S` next). `Err(Restore)` when it does not fit
    /// this engine (another build, configuration or worker count, or a part that does not
    /// load); the workers have then stopped, and a fresh [`Engine::start`] is the way on.
    pub fn start_restored(config: EngineConfig, snapshot: Snapshot) -> Result<Engine, EngineError> {
        if config.cluster.is_some() {
            return Err(EngineError::Restore("a cluster takes no snapshots".into()));
        }
        let want = config.fingerprint();
        if snapshot.fingerprint != want {
            return Err(EngineError::Restore(format!(
                "taken by another build or configuration ({:?}, this one {want:?})",
                snapshot.fingerprint
            )));
        }
        Self::launch(config, Some(Arc::new(snapshot)))
    }

    /// The snapshots taken from now on (taken once; without it they are only kept as the
    /// recovery point).
    pub fn take_snapshots(&mut self) -> Option<UnboundedReceiver<Snapshot>> {
        self.export_snapshots
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.snapshots.take()
    }

    /// The quarantine this engine skips inputs of and records to.
    pub fn quarantine(&self) -> &Arc<Quarantine> {
        &self.quarantine
    }

    fn launch(config: EngineConfig, base: Option<Arc<Snapshot>>) -> Result<Engine, EngineError> {
        worker::quiet_trial_panics();
        let workers = config.workers.max(1);
        let process = config.cluster.as_ref().map_or(0, |c| c.0);
        let every = config
            .snapshot_every_ms
            .filter(|_| config.cluster.is_none());
        let (command_tx, command_rx) = mpsc::sync_channel::<Command>(COMMAND_BACKLOG);
        let (output_tx, output_rx) = unbounded_channel::<Batch>();
        let (snapshot_tx, snapshot_rx) = unbounded_channel::<Snapshot>();
        let host = Arc::new(generation::Host {
            derived: config.derived.clone(),
            workers,
            fingerprint: config.fingerprint(),
            cluster: config.cluster.clone(),
            snapshot_every: every,
            recovery_inputs: config.recovery_inputs.max(1),
            task_retention: config.task_retention_ms,
            census: Census::new(),
            evicted: Arc::default(),
            quarantine: config.quarantine.clone(),
            commands: std::sync::Mutex::new(command_rx),
            outputs: output_tx,
            snapshots: snapshot_tx,
            export_snapshots: Arc::new(AtomicBool::new(false)),
            delivered: Arc::new(AtomicU64::new(0)),
            inputs: Arc::new(AtomicU64::new(0)),
            recovery: parking_lot::Mutex::new(generation::Recovery::new(
                base.clone(),
                config.cluster.is_none(),
            )),
            wake: Arc::default(),
        });
        let plan = generation::Plan {
            base,
            steps: Vec::new(),
            mode: generation::Mode::Live { from: 0 },
        };
        let first = recovery::launch(&host, plan)?;
        let mut engine = Engine {
            commands: command_tx,
            wake: host.wake.clone(),
            supervisor: None,
            outputs: Some(output_rx),
            snapshots: Some(snapshot_rx),
            export_snapshots: host.export_snapshots.clone(),
            delivered: host.delivered.clone(),
            inputs: host.inputs.clone(),
            delivers: process == 0,
            quarantine: config.quarantine.clone(),
            census: host.census.clone(),
            evicted: host.evicted.clone(),
        };
        engine.supervisor =
            Some(recovery::supervise(host, first).map_err(|e| EngineError::Start(e.to_string()))?);
        Ok(engine)
    }

    fn send(&self, c: Command) -> Result<(), EngineError> {
        self.commands.send(c).map_err(|_| EngineError::Stopped)?;
        for t in self.wake.lock().iter() {
            t.unpark();
        }
        Ok(())
    }

    /// Feeds the inputs of logical time `t` (times only move forward; an earlier `t` is taken as
    /// the current time). Blocks while the engine is [`COMMAND_BACKLOG`] commands behind, so a
    /// source faster than the engine (a replay at full speed) is held back instead of filling
    /// memory.
    pub fn input(&self, t: Time, inputs: Vec<Input>) -> Result<(), EngineError> {
        self.send(Command::Input(t, inputs, Origin::Live))
    }

    /// [`Engine::input`] of inputs read back from the store's input log (a restore).
    pub fn restore_input(&self, t: Time, inputs: Vec<Input>) -> Result<(), EngineError> {
        self.send(Command::Input(t, inputs, Origin::Restore))
    }

    /// Moves logical time to `t` without data (clock tick).
    pub fn advance(&self, t: Time) -> Result<(), EngineError> {
        self.send(Command::Advance(t))
    }

    /// Takes a snapshot of the state after every time up to the current one, once the workers
    /// have processed it (sent to [`Engine::take_snapshots`]'s receiver). The current time is
    /// then closed: later inputs must be of a later time (after [`Engine::advance`], nothing
    /// comes at the time advanced to). Without a snapshot period, nothing happens.
    pub fn snapshot_now(&self) -> Result<(), EngineError> {
        self.send(Command::Snapshot)
    }

    /// What the engine holds (for `/metrics`).
    pub fn held(&self) -> Held {
        Held {
            census: self.census.clone(),
            evicted: self.evicted.clone(),
        }
    }

    /// The output batches (taken once).
    pub fn take_outputs(&mut self) -> Option<UnboundedReceiver<Batch>> {
        self.outputs.take()
    }

    /// Completes every output up to and including `t`, then stops the workers (the outputs
    /// channel closes after the last batch).
    pub fn finish(mut self, t: Time) -> Result<(), EngineError> {
        self.send(Command::Finish(t))?;
        if let Some(s) = self.supervisor.take() {
            s.join()
                .map_err(|_| EngineError::Start("the engine's supervisor panicked".into()))?;
        }
        Ok(())
    }
}
