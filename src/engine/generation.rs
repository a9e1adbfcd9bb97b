//! What the workers of one generation share with the engine host and with each other
//! ([`super::recovery`] launches the generations, [`super::worker`] runs in them): the [`Host`]
//! every generation shares, the recovery point the first worker keeps ([`Recovery`]: the latest
//! snapshot and the [`Step`]s applied since), what one generation runs ([`Plan`], [`Mode`]) and
//! shares ([`Cohort`]), and how a worker's run ended ([`Outcome`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

use rmf_dash_dataflows::derived;
use rmf_dash_dataflows::model::input::Input;
use rmf_dash_dataflows::ops::census::Census;
use rmf_dash_dataflows::ops::snapshot::{Snapshot, Snapshots};
use rmf_dash_dataflows::prelude::Time;

use super::{Batch, Command};
use crate::quarantine::{Origin, Quarantine};

/// What every generation of workers shares.
pub(super) struct Host {
    pub derived: derived::Config,
    /// Worker threads in this process.
    pub workers: usize,
    pub cluster: Option<(usize, Vec<String>)>,
    /// Snapshot period (`None`: no snapshots; the recovery point is the start until the tail is
    /// past twice its bound).
    pub snapshot_every: Option<Time>,
    pub fingerprint: String,
    /// The tail's bound (inputs), see [`Recovery::push`].
    pub recovery_inputs: usize,
    /// How long an ended task stays ([`super::EngineConfig::task_retention_ms`]).
    pub task_retention: Option<Time>,
    /// What the keyed operators and the first worker hold.
    pub census: Arc<Census>,
    /// Ended tasks evicted so far.
    pub evicted: Arc<AtomicU64>,
    pub quarantine: Arc<Quarantine>,
    /// The engine's commands (taken by the first worker of the live generation).
    pub commands: std::sync::Mutex<mpsc::Receiver<Command>>,
    pub outputs: UnboundedSender<Batch>,
    pub snapshots: UnboundedSender<Snapshot>,
    /// Whether someone takes the snapshots ([`super::Engine::take_snapshots`]).
    pub export_snapshots: Arc<AtomicBool>,
    /// The output frontier: every output before it is delivered.
    pub delivered: Arc<AtomicU64>,
    /// Inputs received.
    pub inputs: Arc<AtomicU64>,
    pub recovery: Mutex<Recovery>,
    /// The live generation's threads (woken when a command is sent).
    pub wake: Arc<Mutex<Vec<std::thread::Thread>>>,
}

/// One command as the first worker applied it, at the time it applied it.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Input {
        time: Time,
        inputs: Vec<Input>,
        origin: Origin,
    },
    Advance(Time),
    Finish(Time),
}

impl Step {
    pub fn time(&self) -> Time {
        match self {
            Step::Input { time, .. } => *time,
            Step::Advance(t) | Step::Finish(t) => *t,
        }
    }

    pub fn inputs(&self) -> usize {
        match self {
            Step::Input { inputs, .. } => inputs.len(),
            _ => 0,
        }
    }
}

/// The recovery point: the latest snapshot and the steps after it.
pub(super) struct Recovery {
    pub base: Option<Arc<Snapshot>>,
    pub tail: VecDeque<Step>,
    /// Inputs in the tail.
    inputs: usize,
    /// Whether `base` and `tail` rebuild the engine (else the tail holds the steps in flight).
    pub usable: bool,
}

impl Recovery {
    /// From `base` (the snapshot the engine starts from, if any); `rebuildable`: whether a
    /// rebuild in place is possible at all (not in a cluster).
    pub fn new(base: Option<Arc<Snapshot>>, rebuildable: bool) -> Recovery {
        Recovery {
            base,
            tail: VecDeque::new(),
            inputs: 0,
            usable: rebuildable,
        }
    }

    /// Records a step; whether the tail is at its bound (`bound` inputs: a snapshot is due).
    /// Past twice the bound (its snapshots keep failing, or none are taken) the recovery point
    /// is given up until the next snapshot; without one, only the steps at or after the output
    /// frontier `delivered` are kept.
    pub fn push(&mut self, step: Step, delivered: Time, bound: usize) -> bool {
        self.inputs += step.inputs();
        self.tail.push_back(step);
        if self.usable && self.inputs > bound.saturating_mul(2) {
            tracing::warn!(
                inputs = self.inputs,
                "the engine's recovery tail is past twice its bound without a snapshot: an \
                 engine panic now stops the process (exit 70) until the next snapshot"
            );
            self.usable = false;
        }
        if !self.usable {
            while self.tail.front().is_some_and(|s| s.time() < delivered) {
                if let Some(s) = self.tail.pop_front() {
                    self.inputs -= s.inputs();
                }
            }
        }
        self.inputs >= bound
    }

    /// A snapshot was taken: it is the new recovery point.
    pub fn snapshot_taken(&mut self, snapshot: Arc<Snapshot>) {
        self.base = Some(snapshot);
        self.tail.clear();
        self.inputs = 0;
        self.usable = true;
    }

    /// Leaves the quarantined inputs out of the tail.
    pub fn drop_quarantined(&mut self, quarantine: &Quarantine) {
        for step in self.tail.iter_mut() {
            if let Step::Input { inputs, .. } = step {
                inputs.retain(|i| !quarantine.contains(i));
            }
        }
        self.inputs = self.tail.iter().map(Step::inputs).sum();
    }
}

/// What a generation runs.
pub(super) struct Plan {
    /// The snapshot it starts from (`None`: empty).
    pub base: Option<Arc<Snapshot>>,
    /// Steps fed before anything else.
    pub steps: Vec<Step>,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    /// Takes the commands after the plan; outputs before `from` are dropped (delivered by the
    /// generation before).
    Live { from: Time },
    /// Runs the plan through `through` and stops; outputs discarded.
    Trial { through: Time },
}

/// What the workers of one generation share.
pub(super) struct Cohort {
    stop: AtomicBool,
    pub snapshots: Arc<Snapshots>,
    plan: Mutex<Option<Plan>>,
    mode: Mode,
    /// The engine's output frontier (live), or a generation's own (trial).
    pub delivered: Arc<AtomicU64>,
    ready: Mutex<Option<mpsc::Sender<Result<(), String>>>>,
}

impl Cohort {
    /// The cohort of a generation running `plan`, whose first worker says on `ready` whether
    /// the plan's snapshot fits.
    pub fn new(
        snapshots: Arc<Snapshots>,
        plan: Plan,
        delivered: Arc<AtomicU64>,
        ready: mpsc::Sender<Result<(), String>>,
    ) -> Cohort {
        Cohort {
            stop: AtomicBool::new(false),
            snapshots,
            mode: plan.mode,
            plan: Mutex::new(Some(plan)),
            delivered,
            ready: Mutex::new(Some(ready)),
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn live(&self) -> bool {
        matches!(self.mode, Mode::Live { .. })
    }

    /// Outputs before this time are not delivered.
    pub fn from(&self) -> Time {
        match self.mode {
            Mode::Live { from } => from,
            Mode::Trial { .. } => 0,
        }
    }

    pub fn take_plan(&self) -> Option<Plan> {
        self.plan.lock().take()
    }

    /// The first worker says whether the snapshot it starts from fits.
    pub fn ready(&self, outcome: Result<(), String>) {
        if let Some(tx) = self.ready.lock().take() {
            let _ = tx.send(outcome);
        }
    }
}

/// How a worker's run ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Ended,
    Panicked { worker: usize, what: String },
}
