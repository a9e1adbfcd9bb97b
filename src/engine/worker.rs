//! The timely workers of one generation of the engine ([`super::recovery`] starts generations):
//! every worker builds the dataflows; the first one (worker 0 of process 0) owns the inputs. It
//! starts from the generation's plan (a snapshot to restore, steps to feed again), then either
//! takes the engine's commands (a live generation) or runs the plan to its end and stops (a
//! trial).
//!
//! - Inputs are upserts keyed by entity: the first worker keeps the latest value per key and
//!   sends `-old +new`; logs are appended, and so are robot samples (see `Kind::is_sample`). The
//!   other workers close their inputs, so the first worker's input alone drives progress.
//! - Every command the first worker takes is recorded for recovery before it is applied, its
//!   quarantined inputs left out ([`crate::quarantine`]).
//! - A worker that panics is caught here: its generation is stopped (every worker of it returns
//!   and drops its dataflow, which would never complete) and the panic is reported to the
//!   supervisor. A panicked worker's state is never used again.
//! - Snapshots (`EngineConfig::snapshot_every_ms`, one process only): when time moves past a
//!   multiple of the period, or the recovery tail is over its bound, the first worker holds its
//!   input at `S + 1`, collects every keyed operator's state as of `S` and its own latest
//!   inputs, waits until the outputs up to `S` are delivered, and keeps the whole as the
//!   recovery point (and sends it out when someone takes the engine's snapshots: the store;
//!   see `ops::snapshot`).

use std::cell::Cell;
use std::hash::BuildHasher;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, mpsc};
use std::time::Duration;

use rmf_dash_dataflows::derived::{self, Inputs};
use rmf_dash_dataflows::model::input::{Input, InputKey, InputValue, Name, RobotSample};
use rmf_dash_dataflows::ops::building;
use rmf_dash_dataflows::ops::census::{Count, Slot};
use rmf_dash_dataflows::ops::snapshot::Snapshot;
use rmf_dash_dataflows::prelude::*;

use super::generation::{Cohort, Host, Mode, Outcome, Step};
use super::latest::Latest;
use super::{Command, fault, sink};

/// How long a snapshot may hold the input before it is given up (it is only late when the
/// workers are far behind).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

thread_local! {
    /// This thread runs a trial: its panic is expected, and not printed.
    static TRIAL: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once per process) a panic hook that leaves out the panics of trial workers (a
/// rebuild expects several: the supervisor logs what they mean) and passes every other panic to
/// the hook that was there.
pub(super) fn quiet_trial_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !TRIAL.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs one worker of a generation (`cohort`: what its workers share); what became of it.
pub(super) fn run(worker: &mut host::Worker, host: &Host, cohort: &Cohort) -> Outcome {
    let index = worker.index();
    TRIAL.with(|t| t.set(!cohort.live()));
    let result = catch_unwind(AssertUnwindSafe(|| work(worker, host, cohort)));
    let outcome = match result {
        Ok(()) => Outcome::Ended,
        Err(panic) => {
            cohort.stop();
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome::Panicked {
                worker: index,
                what,
            }
        }
    };
    if cohort.stopped() {
        // A stopped generation's dataflow never completes: timely would step it forever.
        for id in worker.installed_dataflows() {
            let _ = catch_unwind(AssertUnwindSafe(|| worker.drop_dataflow(id)));
        }
    }
    outcome
}

fn work(worker: &mut host::Worker, host: &Host, cohort: &Cohort) {
    let index = worker.index();
    let mut input = InputSession::<Time, Input, Diff>::new();
    // Robot samples have their own input: the busiest kind skips the partition by kind.
    let mut robot_input = InputSession::<Time, (Name, RobotSample), Diff>::new();
    let probe = ProbeHandle::new();
    let sink_out = (index == 0 && cohort.live()).then(|| host.outputs.clone());
    // Set when the input is about to close: nothing after it is output (closing the input lets
    // operators run their timers to the end of time in any order).
    let end = Rc::new(Cell::new(Time::MAX));
    let reporting = building::Reporting {
        snapshots: Some(cohort.snapshots.clone()),
        census: Some(host.census.clone()),
    };
    building::building(reporting, || {
        worker.dataflow::<Time, _, _>(|scope| {
            let all = fault::inject(input.to_collection(scope));
            let robots = robot_input.to_collection(scope);
            let inputs = Inputs::split_with(all, Some(robots));
            let out = derived::build_all(&inputs, &host.derived);
            let delivery = sink::Delivery {
                sender: sink_out,
                end: end.clone(),
                delivered: cohort.delivered.clone(),
                from: cohort.from(),
            };
            sink::complete_batches(out, &probe, delivery);
        })
    });
    cohort.snapshots.built();
    if index != 0 {
        // Only the first worker's input drives progress.
        drop(input);
        drop(robot_input);
        // Ends when the first worker closes its input and the dataflow completes, or when the
        // generation stops.
        while !cohort.stopped() && worker.step_or_park(Some(Duration::from_millis(100))) {}
        return;
    }
    let first = First {
        worker,
        host,
        cohort,
        input,
        robot_input,
        probe,
        latest: Latest::default(),
        census: host.census.register("LatestInputs", 0),
        samples: Default::default(),
        end,
        tail_over: false,
    };
    first.run();
}

/// What a command did.
enum Taken {
    Moved,
    Nothing,
    Finish(Time),
}

/// The first worker: the inputs and what it keeps of them.
struct First<'w> {
    worker: &'w mut host::Worker,
    host: &'w Host,
    cohort: &'w Cohort,
    input: InputSession<Time, Input, Diff>,
    robot_input: InputSession<Time, (Name, RobotSample), Diff>,
    probe: ProbeHandle<Time>,
    latest: Latest,
    /// Where the latest-input map's size is counted (`LatestInputs` in the census).
    census: Arc<Slot>,
    /// The robot samples of the command being fed (the last of each key wins).
    samples: rustc_hash::FxHashMap<InputKey, InputValue>,
    end: Rc<Cell<Time>>,
    /// The recovery tail is over its bound: a snapshot is due at the next time.
    tail_over: bool,
}

impl First<'_> {
    fn now(&self) -> Time {
        *self.input.time()
    }

    fn stopped(&self) -> bool {
        self.cohort.stopped()
    }

    /// Moves the inputs to `t` (never back); whether they moved. Ended tasks whose time to
    /// leave comes before `t` leave at their time on the way.
    fn advance(&mut self, t: Time) -> bool {
        if t <= self.now() {
            return false;
        }
        while let Some(due) = self.latest.next_leaving().filter(|at| *at < t) {
            let at = due.max(self.now());
            self.input.advance_to(at);
            self.robot_input.advance_to(at);
            let left = self.latest.take_leaving(due);
            self.host
                .evicted
                .fetch_add(left.len() as u64, Ordering::Relaxed);
            for (key, value) in left {
                self.input.update((key, value), -1);
            }
        }
        self.input.advance_to(t);
        self.robot_input.advance_to(t);
        true
    }

    fn flush(&mut self) {
        self.input.flush();
        self.robot_input.flush();
        let latest = Count {
            keys: self.latest.values.len() + self.latest.samples.len(),
            timer_times: self.latest.leaving.len(),
        };
        self.census.set(latest);
    }

    /// Steps until every output before `t` is computed (or the generation stops).
    fn complete(&mut self, t: Time) {
        self.flush();
        while !self.stopped() && self.probe.less_than(&t) {
            self.worker.step();
        }
    }

    /// Feeds the inputs of one command at `t` (an earlier `t` is taken as the current time).
    fn feed(&mut self, t: Time, batch: Vec<Input>) {
        self.advance(t);
        self.samples.clear();
        for (key, value) in batch {
            if key.0.is_log() {
                self.input.update((key, value), 1);
            } else if key.0.is_sample() {
                // The last of each key in this time wins.
                self.samples.insert(key, value);
            } else if self.latest.values.get(&key) != Some(&value) {
                let t = self.now();
                self.latest.track(&key, &value, t, self.host.task_retention);
                if let Some(old) = self.latest.values.insert(key.clone(), value.clone()) {
                    self.input.update((key.clone(), old), -1);
                }
                self.input.update((key, value), 1);
            }
        }
        for (key, value) in self.samples.drain() {
            let hash = rustc_hash::FxBuildHasher.hash_one(&value);
            if self.latest.samples.insert(key.clone(), hash) != Some(hash)
                && let InputValue::Robot(sample) = value
            {
                self.robot_input.update((key.1, sample), 1);
            }
        }
    }

    /// Loads the latest inputs of `base` and presents them at its time, as in the run the
    /// snapshot is of (the restored operators skip them: their states hold them already).
    fn restore(&mut self, base: &Snapshot) -> Result<(), String> {
        self.cohort.snapshots.restore_outcome()?;
        self.latest = Latest::decode(&base.inputs)
            .map_err(|e| format!("the latest inputs do not load: {e}"))?;
        let t = base.time;
        self.input.advance_to(t);
        self.robot_input.advance_to(t);
        for (key, value) in &self.latest.values {
            self.input.update((key.clone(), value.clone()), 1);
        }
        self.input.advance_to(t + 1);
        self.robot_input.advance_to(t + 1);
        self.flush();
        Ok(())
    }

    /// Records a command's step for recovery.
    fn record(&mut self, step: Step) {
        let delivered = self.host.delivered.load(Ordering::Acquire);
        self.tail_over = self
            .host
            .recovery
            .lock()
            .push(step, delivered, self.host.recovery_inputs);
    }

    fn run(mut self) {
        // Every worker of this process has registered its operators before the first worker
        // goes on.
        while self.cohort.snapshots.workers_built() < self.host.workers {
            if self.stopped() {
                return;
            }
            self.worker.step_or_park(Some(Duration::from_millis(1)));
        }
        let Some(plan) = self.cohort.take_plan() else {
            return;
        };
        if let Some(base) = &plan.base {
            let outcome = self.restore(base);
            let fits = outcome.is_ok();
            self.cohort.ready(outcome);
            if !fits {
                self.cohort.stop();
                return;
            }
        }
        for step in plan.steps {
            match step {
                Step::Input { time, inputs, .. } => self.feed(time, inputs),
                Step::Advance(t) => {
                    self.advance(t);
                }
                Step::Finish(t) if self.cohort.live() => return self.finish(t),
                Step::Finish(_) => {}
            }
        }
        self.flush();
        match plan.mode {
            Mode::Trial { through } => {
                self.advance(through + 1);
                self.complete(through + 1);
                // The plan has run through: every worker returns.
                self.cohort.stop();
            }
            Mode::Live { .. } => self.serve(),
        }
    }

    /// Takes the engine's commands until it finishes or the generation stops.
    fn serve(mut self) {
        let rx = self
            .host
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let every = self.host.snapshot_every.map(|e| e.max(1));
        let mut next_snapshot = every.map(|e| (self.now() / e + 1) * e);
        loop {
            if self.stopped() {
                return;
            }
            let mut moved = false;
            loop {
                let command = match rx.try_recv() {
                    Ok(c) => c,
                    Err(mpsc::TryRecvError::Empty) => break,
                    // Every handle is gone: what was sent is completed.
                    Err(mpsc::TryRecvError::Disconnected) => Command::Finish(self.now()),
                };
                // Time is about to move past a snapshot time (or the tail is over its bound):
                // the state as of the current time is the snapshot's.
                if let (Command::Input(t, ..) | Command::Advance(t), Some(e)) = (&command, every) {
                    let now = self.now();
                    let due = next_snapshot.is_some_and(|at| now >= at) || self.tail_over;
                    if *t > now && due {
                        self.snapshot();
                        next_snapshot = Some((now / e + 1) * e);
                    }
                }
                match self.take(command) {
                    Taken::Moved => moved = true,
                    Taken::Nothing => {}
                    Taken::Finish(t) => return self.finish(t),
                }
            }
            if moved {
                self.flush();
            }
            self.worker.step_or_park(Some(Duration::from_millis(50)));
        }
    }

    /// Applies one command, recorded for recovery first.
    fn take(&mut self, command: Command) -> Taken {
        match command {
            Command::Input(t, batch, origin) => {
                let host = self.host;
                host.inputs.fetch_add(batch.len() as u64, Ordering::Relaxed);
                let batch = host.quarantine.filter(batch);
                let time = t.max(self.now());
                self.record(Step::Input {
                    time,
                    inputs: batch.clone(),
                    origin,
                });
                self.feed(t, batch);
                Taken::Moved
            }
            Command::Advance(t) if t > self.now() => {
                self.record(Step::Advance(t));
                self.advance(t);
                Taken::Moved
            }
            Command::Advance(_) => Taken::Nothing,
            Command::Snapshot if self.host.snapshot_every.is_some() => {
                // The backlog first, so that the hold measures the snapshot alone.
                let now = self.now();
                self.complete(now);
                self.snapshot();
                Taken::Moved
            }
            Command::Snapshot => Taken::Nothing,
            Command::Finish(t) => {
                self.record(Step::Finish(t));
                Taken::Finish(t)
            }
        }
    }

    /// Completes every output up to and including `t`, then closes the inputs: the dataflow
    /// ends on every worker.
    fn finish(mut self, t: Time) {
        self.advance(t + 1);
        self.complete(t + 1);
        self.end.set(t);
        let First {
            worker,
            cohort,
            input,
            robot_input,
            ..
        } = self;
        drop(input);
        drop(robot_input);
        while !cohort.stopped() && worker.step_or_park(Some(Duration::from_millis(10))) {}
    }

    /// Takes a snapshot at the current time and keeps it as the recovery point (and sends it
    /// out, when the engine's snapshots are taken).
    fn snapshot(&mut self) {
        let Some(s) = self.take_snapshot() else {
            return;
        };
        // The recovery point's outputs are all delivered: a rebuild from it drops them.
        while !self.stopped() && self.cohort.delivered.load(Ordering::Acquire) <= s.time {
            self.worker.step_or_park(Some(Duration::from_millis(1)));
        }
        let s = Arc::new(s);
        if self.host.export_snapshots.load(Ordering::Relaxed) {
            let _ = self.host.snapshots.send((*s).clone());
        }
        self.host.recovery.lock().snapshot_taken(s);
        self.tail_over = false;
    }

    /// Takes a snapshot of the state after every time up to the current one `S`: holds the
    /// input at `S + 1`, lets every keyed operator write its state, and returns the whole. A
    /// snapshot that fails or takes longer than [`SNAPSHOT_TIMEOUT`] is given up with a
    /// warning (the next one comes a period later; a restore meanwhile starts from the previous
    /// one).
    fn take_snapshot(&mut self) -> Option<Snapshot> {
        let s = self.now();
        let started = std::time::Instant::now();
        self.advance(s + 1);
        let cohort = self.cohort;
        let shared = &cohort.snapshots;
        shared.begin(s);
        let inputs = self.latest.encode();
        self.flush();
        while !shared.done() && !self.stopped() && started.elapsed() < SNAPSHOT_TIMEOUT {
            self.worker.step_or_park(Some(Duration::from_millis(1)));
        }
        let parts = shared.end();
        match (inputs, parts) {
            (Ok(inputs), Ok(parts)) => {
                let snapshot = Snapshot {
                    time: s,
                    workers: self.worker.peers(),
                    fingerprint: self.host.fingerprint.clone(),
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
                Some(snapshot)
            }
            (Err(e), _) => {
                tracing::warn!(time = s, "engine snapshot given up: {e}");
                None
            }
            (_, Err(why)) => {
                tracing::warn!(time = s, "engine snapshot given up: {why}");
                None
            }
        }
    }
}
