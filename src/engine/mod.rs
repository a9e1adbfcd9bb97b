//! The engine host: runs the dataflows of `rmf-dash-dataflows` on dedicated timely worker threads
//! (never inside tokio), feeds them from any thread through a channel, and delivers their output
//! as complete-time batches.
//!
//! - Inputs are upserts keyed by entity: the first worker keeps the latest value per key and sends
//!   `-old +new`; logs are appended, and so are robot samples (see `Kind::is_sample`). The other workers (and the workers of other processes in a
//!   cluster) close their inputs, so the first worker's input alone drives progress.
//! - Time is logical: milliseconds rounded up to the tick ([`clock`]). [`Engine::advance`] moves
//!   time on when no data arrives, so timeouts fire.
//! - Output ([`Batch`]): every change of time `t`, once the frontier has passed `t`, retractions
//!   first; from the first worker of process 0 only.
//! - A panicking worker stops the process with exit code 70 after logging the panic.
//! - Snapshots (`EngineConfig::snapshot_every_ms`, one process only): when time moves past a
//!   multiple of the period, the first worker holds its input at `S + 1`, collects every keyed
//!   operator's state as of `S` and its own latest inputs, and sends the whole
//!   ([`Snapshot`]); [`Engine::start_restored`] starts from one (see `ops::snapshot`).

pub mod clock;
mod sink;

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use rmf_dash_dataflows::derived::{self, Inputs, Output};
use rmf_dash_dataflows::model::input::{Input, InputKey, InputValue, Name, RobotSample};
use rmf_dash_dataflows::ops::snapshot::{self, Snapshot, Snapshots};
use rmf_dash_dataflows::prelude::*;

pub use clock::Clock;

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
    /// Snapshot period in logical ms (`None`: no snapshots; never in a cluster).
    pub snapshot_every_ms: Option<Time>,
}

impl EngineConfig {
    /// What a snapshot must have been taken with to be loaded: the dataflows' sources and
    /// configuration, and the worker count.
    pub fn fingerprint(&self) -> String {
        format!(
            "{} workers={} {:?}",
            snapshot::SOURCE_HASH,
            self.workers.max(1),
            self.derived
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

/// How long a snapshot may hold the input before it is given up (it is only late when the
/// workers are far behind).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// All changes of one logical time, retractions first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub time: Time,
    pub changes: Vec<(Output, Diff)>,
}

enum Command {
    Input(Time, Vec<Input>),
    Advance(Time),
    /// A snapshot at the current time now (see [`Engine::snapshot_now`]).
    Snapshot,
    Finish(Time),
}

/// A handle to the running engine.
pub struct Engine {
    commands: mpsc::SyncSender<Command>,
    wake: Vec<std::thread::Thread>,
    guards: Option<host::WorkerGuards<()>>,
    outputs: Option<UnboundedReceiver<Batch>>,
    snapshots: Option<UnboundedReceiver<Snapshot>>,
    /// Every output of a logical time before this one has been delivered (the output frontier).
    pub delivered: Arc<AtomicU64>,
    /// Records received so far.
    pub inputs: Arc<AtomicU64>,
    /// Whether this process delivers output (process 0 of a cluster).
    pub delivers: bool,
}

/// What the first worker restores: the snapshot's time, its own part (the latest inputs), and
/// where to say whether the whole snapshot fits.
type Restore = (Time, Vec<u8>, mpsc::Sender<Result<(), String>>);

impl Engine {
    /// Starts the workers.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        Self::launch(config, Snapshots::new(), None)
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
        let shared = Snapshots::restoring(snapshot.time, snapshot.parts);
        let (tx, rx) = mpsc::channel();
        let mut engine = Self::launch(config, shared, Some((snapshot.time, snapshot.inputs, tx)))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(engine),
            Ok(Err(why)) => {
                // The first worker has closed its input: the workers end.
                if let Some(g) = engine.guards.take() {
                    drop(g.join());
                }
                Err(EngineError::Restore(why))
            }
            Err(_) => Err(EngineError::Stopped),
        }
    }

    /// The snapshots taken (taken once).
    pub fn take_snapshots(&mut self) -> Option<UnboundedReceiver<Snapshot>> {
        self.snapshots.take()
    }

    fn launch(
        config: EngineConfig,
        shared: Arc<Snapshots>,
        restore: Option<Restore>,
    ) -> Result<Engine, EngineError> {
        let workers = config.workers.max(1);
        let (timely_config, process) = match &config.cluster {
            Some((process, hosts)) => (
                host::Config {
                    communication: host::CommunicationConfig::Cluster {
                        threads: workers,
                        process: *process,
                        addresses: hosts.clone(),
                        report: false,
                        zerocopy: false,
                    },
                    worker: host::WorkerConfig::default(),
                },
                *process,
            ),
            None if workers == 1 => (host::Config::thread(), 0),
            None => (host::Config::process(workers), 0),
        };
        let (command_tx, command_rx) = mpsc::sync_channel::<Command>(COMMAND_BACKLOG);
        let command_rx = Arc::new(std::sync::Mutex::new(Some(command_rx)));
        let (output_tx, output_rx) = unbounded_channel::<Batch>();
        let (snapshot_tx, snapshot_rx) = unbounded_channel::<Snapshot>();
        let snapshotting = Snapshotting {
            shared,
            every: config
                .snapshot_every_ms
                .filter(|_| config.cluster.is_none()),
            fingerprint: config.fingerprint(),
            tx: snapshot_tx,
            restore: std::sync::Mutex::new(restore),
            workers: config.workers,
        };
        let (thread_tx, thread_rx) = mpsc::channel::<std::thread::Thread>();
        let delivered = Arc::new(AtomicU64::new(0));
        let inputs_count = Arc::new(AtomicU64::new(0));
        let derived_config = Arc::new(config.derived.clone());
        let (delivered2, inputs2) = (delivered.clone(), inputs_count.clone());
        let guards = host::execute(timely_config, move |worker| {
            let _ = thread_tx.send(std::thread::current());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_worker(
                    worker,
                    &command_rx,
                    &output_tx,
                    &derived_config,
                    &delivered2,
                    &inputs2,
                    &snapshotting,
                )
            }));
            if let Err(panic) = result {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                tracing::error!(
                    worker = worker.index(),
                    "engine worker panicked: {what}; stopping the process"
                );
                std::process::exit(70);
            }
        })
        .map_err(EngineError::Start)?;
        let wake = thread_rx.iter().take(workers).collect();
        Ok(Engine {
            commands: command_tx,
            wake,
            guards: Some(guards),
            outputs: Some(output_rx),
            snapshots: Some(snapshot_rx),
            delivered,
            inputs: inputs_count,
            delivers: process == 0,
        })
    }

    fn send(&self, c: Command) -> Result<(), EngineError> {
        self.commands.send(c).map_err(|_| EngineError::Stopped)?;
        for t in &self.wake {
            t.unpark();
        }
        Ok(())
    }

    /// Feeds the inputs of logical time `t` (times only move forward; an earlier `t` is taken as
    /// the current time). Blocks while the engine is [`COMMAND_BACKLOG`] commands behind, so a
    /// source faster than the engine (a replay at full speed) is held back instead of filling
    /// memory.
    pub fn input(&self, t: Time, inputs: Vec<Input>) -> Result<(), EngineError> {
        self.send(Command::Input(t, inputs))
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

    /// The output batches (taken once).
    pub fn take_outputs(&mut self) -> Option<UnboundedReceiver<Batch>> {
        self.outputs.take()
    }

    /// Completes every output up to and including `t`, then stops the workers (the outputs
    /// channel closes after the last batch).
    pub fn finish(mut self, t: Time) -> Result<(), EngineError> {
        self.send(Command::Finish(t))?;
        if let Some(g) = self.guards.take() {
            for r in g.join() {
                r.map_err(EngineError::Start)?;
            }
        }
        Ok(())
    }
}

/// Snapshot settings and state shared by the workers.
struct Snapshotting {
    shared: Arc<Snapshots>,
    every: Option<Time>,
    fingerprint: String,
    tx: UnboundedSender<Snapshot>,
    /// For the first worker, when restoring.
    restore: std::sync::Mutex<Option<Restore>>,
    /// The workers of this process (`shared` counts only those; in a cluster timely's peers
    /// are every process's).
    workers: usize,
}

/// The first worker's own state: the latest value per upsert key, and the hash of the latest
/// sample per robot key.
#[derive(Default)]
struct Latest {
    values: rustc_hash::FxHashMap<InputKey, InputValue>,
    samples: rustc_hash::FxHashMap<InputKey, u64>,
}

impl Latest {
    /// The encoding in a snapshot (sorted: the same state gives the same bytes).
    fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        let mut values: Vec<_> = self.values.iter().collect();
        values.sort();
        let mut samples: Vec<_> = self.samples.iter().collect();
        samples.sort();
        bincode::serialize(&(values, samples))
    }

    fn decode(bytes: &[u8]) -> Result<Latest, bincode::Error> {
        let (values, samples): (Vec<(InputKey, InputValue)>, Vec<(InputKey, u64)>) =
            bincode::deserialize(bytes)?;
        Ok(Latest {
            values: values.into_iter().collect(),
            samples: samples.into_iter().collect(),
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn run_worker(
    worker: &mut host::Worker,
    commands: &std::sync::Mutex<Option<mpsc::Receiver<Command>>>,
    outputs: &UnboundedSender<Batch>,
    config: &derived::Config,
    delivered: &Arc<AtomicU64>,
    count: &AtomicU64,
    snapshotting: &Snapshotting,
) {
    let index = worker.index();
    let mut input = InputSession::<Time, Input, Diff>::new();
    // Robot samples have their own input: the busiest kind skips the partition by kind.
    let mut robot_input = InputSession::<Time, (Name, RobotSample), Diff>::new();
    let probe = ProbeHandle::new();
    let sink_out = (index == 0).then(|| outputs.clone());
    // Set when the input is about to close: nothing after it is output (closing the input lets
    // operators run their timers to the end of time in any order).
    let end = std::rc::Rc::new(std::cell::Cell::new(Time::MAX));
    let shared = &snapshotting.shared;
    snapshot::building(shared, || {
        worker.dataflow::<Time, _, _>(|scope| {
            let all = input.to_collection(scope);
            let robots = robot_input.to_collection(scope);
            let inputs = Inputs::split_with(all, Some(robots));
            let out = derived::build_all(&inputs, config);
            sink::complete_batches(out, sink_out, &probe, end.clone(), delivered.clone());
        })
    });
    shared.built();
    if index != 0 {
        // Only the first worker's input drives progress.
        drop(input);
        drop(robot_input);
        // Ends when the first worker closes its input and the dataflow completes.
        while worker.step_or_park(Some(Duration::from_millis(100))) {}
        return;
    }
    let Some(rx) = commands.lock().ok().and_then(|mut r| r.take()) else {
        return;
    };
    let mut latest = Latest::default();
    let mut samples: rustc_hash::FxHashMap<InputKey, InputValue> = Default::default();
    let mut finish: Option<Time> = None;
    // Every worker of this process has registered its operators before the first worker goes
    // on.
    while shared.workers_built() < snapshotting.workers {
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    let restore = snapshotting.restore.lock().ok().and_then(|mut r| r.take());
    if let Some((t, bytes, answer)) = restore {
        let outcome = shared.restore_outcome().and_then(|()| {
            Latest::decode(&bytes).map_err(|e| format!("the latest inputs do not load: {e}"))
        });
        match outcome {
            Ok(l) => {
                // The latest inputs are present at `t`, as in the run the snapshot is of (the
                // restored operators skip them: their states hold them already).
                latest = l;
                input.advance_to(t);
                robot_input.advance_to(t);
                for (key, value) in &latest.values {
                    input.update((key.clone(), value.clone()), 1);
                }
                input.advance_to(t + 1);
                robot_input.advance_to(t + 1);
                input.flush();
                robot_input.flush();
                let _ = answer.send(Ok(()));
            }
            Err(why) => {
                let _ = answer.send(Err(why));
                drop(input);
                drop(robot_input);
                while worker.step_or_park(Some(Duration::from_millis(10))) {}
                return;
            }
        }
    }
    let mut next_snapshot = snapshotting
        .every
        .map(|every| (*input.time() / every.max(1) + 1) * every.max(1));
    loop {
        let mut moved = false;
        loop {
            let command = rx.try_recv();
            // Time is about to move past `next_snapshot`: the state as of the current time is
            // the snapshot's (every input of that time is in).
            if let (Ok(Command::Input(t, _) | Command::Advance(t)), Some(at)) =
                (&command, next_snapshot)
            {
                let now = *input.time();
                if *t > now && now >= at {
                    take_snapshot(worker, &mut input, &mut robot_input, &latest, snapshotting);
                    let every = snapshotting.every.unwrap_or(1).max(1);
                    next_snapshot = Some((now / every + 1) * every);
                }
            }
            match command {
                Ok(Command::Input(t, batch)) => {
                    if t > *input.time() {
                        input.advance_to(t);
                        robot_input.advance_to(t);
                    }
                    count.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    samples.clear();
                    for (key, value) in batch {
                        if key.0.is_log() {
                            input.update((key, value), 1);
                        } else if key.0.is_sample() {
                            // The last of each key in this time wins.
                            samples.insert(key, value);
                        } else if latest.values.get(&key) != Some(&value) {
                            if let Some(old) = latest.values.insert(key.clone(), value.clone()) {
                                input.update((key.clone(), old), -1);
                            }
                            input.update((key, value), 1);
                        }
                    }
                    for (key, value) in samples.drain() {
                        let hash = rustc_hash::FxBuildHasher.hash_one(&value);
                        if latest.samples.insert(key.clone(), hash) != Some(hash)
                            && let InputValue::Robot(sample) = value
                        {
                            robot_input.update((key.1, sample), 1);
                        }
                    }
                    moved = true;
                }
                Ok(Command::Advance(t)) => {
                    if t > *input.time() {
                        input.advance_to(t);
                        robot_input.advance_to(t);
                        moved = true;
                    }
                }
                Ok(Command::Snapshot) => {
                    if snapshotting.every.is_some() {
                        input.flush();
                        robot_input.flush();
                        // The backlog first, so that the hold measures the snapshot alone.
                        while probe.less_than(input.time()) {
                            worker.step();
                        }
                        take_snapshot(worker, &mut input, &mut robot_input, &latest, snapshotting);
                        moved = true;
                    }
                }
                Ok(Command::Finish(t)) => {
                    finish = Some(t);
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    finish = Some(*input.time());
                    break;
                }
            }
        }
        if let Some(t) = finish {
            if t + 1 > *input.time() {
                input.advance_to(t + 1);
                robot_input.advance_to(t + 1);
            }
            input.flush();
            robot_input.flush();
            while probe.less_than(&(t + 1)) {
                worker.step();
            }
            end.set(t);
            // Closing the inputs ends the dataflow on every worker.
            drop(input);
            drop(robot_input);
            while worker.step_or_park(Some(Duration::from_millis(10))) {}
            return;
        }
        if moved {
            input.flush();
            robot_input.flush();
        }

        worker.step_or_park(Some(Duration::from_millis(50)));
    }
}

/// Takes a snapshot of the state after every time up to the current one `S` (the first worker,
/// between commands, when the next command's time is later): holds the input at `S + 1`, lets
/// every keyed operator write its state, and sends the whole. A snapshot that fails or takes
/// longer than [`SNAPSHOT_TIMEOUT`] is given up with a warning (the next one comes a period
/// later; a restore meanwhile starts from the previous one).
fn take_snapshot(
    worker: &mut host::Worker,
    input: &mut InputSession<Time, Input, Diff>,
    robot_input: &mut InputSession<Time, (Name, RobotSample), Diff>,
    latest: &Latest,
    snapshotting: &Snapshotting,
) {
    let s = *input.time();
    let started = std::time::Instant::now();
    input.advance_to(s + 1);
    robot_input.advance_to(s + 1);
    let shared = &snapshotting.shared;
    shared.begin(s);
    let inputs = latest.encode();
    input.flush();
    robot_input.flush();
    while !shared.done() && started.elapsed() < SNAPSHOT_TIMEOUT {
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    let parts = shared.end();
    match (inputs, parts) {
        (Ok(inputs), Ok(parts)) => {
            let snapshot = Snapshot {
                time: s,
                workers: worker.peers(),
                fingerprint: snapshotting.fingerprint.clone(),
                inputs,
                parts,
                took_ms: started.elapsed().as_millis() as u64,
            };
            tracing::debug!(
                time = s,
                bytes = snapshot.bytes(),
                took_ms = snapshot.took_ms,
                "engine snapshot taken"
            );
            let _ = snapshotting.tx.send(snapshot);
        }
        (Err(e), _) => tracing::warn!(time = s, "engine snapshot given up: {e}"),
        (_, Err(why)) => tracing::warn!(time = s, "engine snapshot given up: {why}"),
    }
}
