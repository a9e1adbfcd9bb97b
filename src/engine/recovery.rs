//! What happens when an engine worker panics: the engine is rebuilt in place, without the input
//! that caused it, which is quarantined ([`crate::quarantine`]); the process does not exit and
//! nothing else is lost (DESIGN.md invariants 2 and 6).
//!
//! The workers run in *generations* ([`launch`]); a supervisor thread ([`supervise`]) waits on
//! the live one. A panicked worker's dataflow state is not usable, and with several workers the
//! others would wait forever for its progress: on a panic every worker of the generation returns
//! and drops its dataflow ([`super::worker`]), and the supervisor rebuilds from the *recovery
//! point*, which the first worker keeps as it goes ([`Recovery`]): the latest snapshot (or the
//! empty start) and every command taken since, as it was applied (the *tail*).
//!
//! 1. Suspects: the inputs of the tail whose time the outputs had not passed when the worker
//!    panicked (the output frontier `F`). What is before `F` completed once and, the engine
//!    being deterministic, completes again.
//! 2. Trials: generations that restore the recovery point, feed the tail with some of the
//!    suspects, run to the time the panicked one had reached, and report whether they panic;
//!    their outputs are discarded. The shortest prefix of the suspects that panics ends with a
//!    culprit (binary search: about log2(suspects) trials); the search repeats without it until
//!    the whole tail runs (at most 8 culprits). If the tail without any suspect panics
//!    already (an older input's timer, a join with an older input), every input of the tail is
//!    a suspect. If the whole tail runs at once, the panic was not caused by an input: nothing
//!    is quarantined.
//! 3. The culprits are quarantined (the store's table, or memory) and the live generation is
//!    launched from the recovery point with the tail without them; it drops the outputs before
//!    `F` (delivered already), delivers the rest, and takes the commands that queued meanwhile
//!    (sources are held back by the bounded command queue, never lost).
//!
//! The outputs are then those of a run that never received the culprit, and so is a later
//! restore from the store, which skips quarantined inputs in the input log.
//!
//! Without a recovery point (a timely cluster: the other processes cannot be rebuilt from here;
//! or a tail past twice its bound, `--recovery-inputs`, whose snapshots keep failing or are
//! never taken, `--snapshot-every 0`) only the inputs in flight are kept; a panic quarantines
//! all of them and stops the process with exit code 70: its supervisor restarts it once, and
//! nothing quarantined comes in again (with a store: without one, the quarantine is lost with
//! the process). The same when a rebuild fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rmf_dash_dataflows::ops::snapshot::{Snapshot, Snapshots};
use rmf_dash_dataflows::prelude::{Time, host};

use super::generation::{Cohort, Host, Mode, Outcome, Plan, Step};
use super::{EngineError, worker};
use crate::quarantine::Entry;

/// The exit code of a process whose engine cannot go on.
pub const EXIT_ENGINE: i32 = 70;

/// How long the other workers of a panicked generation may take to return.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Culprits sought for one panic before giving up.
const MAX_CULPRITS: usize = 8;

/// A running generation.
pub(super) struct Generation {
    cohort: Arc<Cohort>,
    guards: host::WorkerGuards<()>,
    outcomes: mpsc::Receiver<Outcome>,
    threads: Vec<std::thread::Thread>,
}

impl Generation {
    /// Waits until every worker has returned: `Panicked` (the first panic) when one panicked.
    /// Stops the process when the others do not return after a panic.
    fn wait(self) -> Outcome {
        let mut panic: Option<Outcome> = None;
        let mut reported = 0;
        let mut deadline: Option<Instant> = None;
        while reported < self.threads.len() {
            let next = match deadline {
                None => self.outcomes.recv().ok(),
                Some(d) => self
                    .outcomes
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                    .ok(),
            };
            let Some(outcome) = next else { break };
            reported += 1;
            if let Outcome::Panicked { .. } = outcome
                && panic.is_none()
            {
                panic = Some(outcome);
                deadline = Some(Instant::now() + STOP_TIMEOUT);
                self.threads.iter().for_each(std::thread::Thread::unpark);
            }
        }
        if reported < self.threads.len() {
            tracing::error!(
                reported,
                workers = self.threads.len(),
                "engine workers did not stop after a panic: stopping the process (exit {EXIT_ENGINE})"
            );
            std::process::exit(EXIT_ENGINE);
        }
        drop(self.guards.join());
        panic.unwrap_or(Outcome::Ended)
    }

    /// Stops every worker and waits for them.
    fn stop(self) {
        self.cohort.stop();
        self.threads.iter().for_each(std::thread::Thread::unpark);
        drop(self.wait());
    }
}

fn timely_config(host: &Host) -> host::Config {
    match &host.cluster {
        Some((process, hosts)) => host::Config {
            communication: host::CommunicationConfig::Cluster {
                threads: host.workers,
                process: *process,
                addresses: hosts.clone(),
                report: false,
                zerocopy: false,
            },
            worker: host::WorkerConfig::default(),
        },
        None if host.workers == 1 => host::Config::thread(),
        None => host::Config::process(host.workers),
    }
}

/// Starts a generation running `plan`. `Err(Restore)` when its snapshot does not fit (its
/// workers have stopped).
pub(super) fn launch(host: &Arc<Host>, plan: Plan) -> Result<Generation, EngineError> {
    let mode = plan.mode;
    let restoring = plan.base.is_some();
    let snapshots = match &plan.base {
        Some(s) => Snapshots::restoring(s.time, s.parts.clone()),
        None => Snapshots::new(),
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let delivered = match mode {
        Mode::Live { .. } => host.delivered.clone(),
        Mode::Trial { .. } => Arc::new(AtomicU64::new(0)),
    };
    let cohort = Arc::new(Cohort::new(snapshots, plan, delivered, ready_tx));
    let (outcome_tx, outcomes) = mpsc::channel();
    let (thread_tx, thread_rx) = mpsc::channel();
    let (h, g) = (host.clone(), cohort.clone());
    let guards = host::execute(timely_config(host), move |worker| {
        let _ = thread_tx.send(std::thread::current());
        let _ = outcome_tx.send(worker::run(worker, &h, &g));
    })
    .map_err(EngineError::Start)?;
    let threads: Vec<_> = thread_rx.iter().take(host.workers).collect();
    if cohort.live() {
        *host.wake.lock() = threads.clone();
    }
    let generation = Generation {
        cohort,
        guards,
        outcomes,
        threads,
    };
    if restoring {
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(())) => break,
                Ok(Err(why)) => {
                    generation.stop();
                    return Err(EngineError::Restore(why));
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !generation.cohort.stopped() => {}
                // A worker stopped (panicked) first: `wait` says so.
                Err(_) => break,
            }
        }
    }
    Ok(generation)
}

/// Runs the supervisor of the engine, from its first generation, on a thread of its own; it
/// ends when a generation ends without a panic.
pub(super) fn supervise(
    host: Arc<Host>,
    first: Generation,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rmf-dash-engine".into())
        .spawn(move || {
            let mut generation = first;
            loop {
                match generation.wait() {
                    Outcome::Ended => return,
                    Outcome::Panicked { worker, what } => {
                        host.quarantine
                            .metrics
                            .panics
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::error!(worker, "engine worker panicked: {what}");
                        generation = rebuild(&host, &what);
                    }
                }
            }
        })
}

/// Why the engine cannot be rebuilt in place.
#[derive(Debug, thiserror::Error)]
enum Unrecoverable {
    #[error("no recovery point (a cluster, no snapshots, or a tail past its bound)")]
    NoRecoveryPoint,
    #[error("a rebuild failed: {0}")]
    Rebuild(EngineError),
    #[error("the engine panics without any input since its recovery point")]
    NotAnInput,
    #[error("more than {MAX_CULPRITS} inputs make it panic")]
    TooMany,
}

/// An input of the tail: (step, position).
type Addr = (usize, usize);

/// Rebuilds the engine after a panic (see the module's header); stops the process when it
/// cannot.
fn rebuild(host: &Arc<Host>, what: &str) -> Generation {
    let started = Instant::now();
    let frontier = host.delivered.load(Ordering::Acquire);
    let (base, tail, usable) = {
        let r = host.recovery.lock();
        (r.base.clone(), Vec::from(r.tail.clone()), r.usable)
    };
    if !usable {
        give_up(host, &tail, frontier, what, Unrecoverable::NoRecoveryPoint);
    }
    let suspects = addresses(&tail, frontier).len();
    tracing::info!(
        suspects,
        from = frontier,
        "engine worker panic: rebuilding the engine in place and looking for the input that caused it"
    );
    let mut trials = Trials::new(host, base.clone(), &tail);
    let culprits = match trials.isolate(frontier) {
        Ok(c) => c,
        Err(e) => give_up(host, &tail, frontier, what, e),
    };
    for &addr in &culprits {
        quarantine(host, &tail, addr, what);
    }
    let steps = {
        let mut r = host.recovery.lock();
        r.drop_quarantined(&host.quarantine);
        Vec::from(r.tail.clone())
    };
    let plan = Plan {
        base,
        steps,
        mode: Mode::Live { from: frontier },
    };
    match launch(host, plan) {
        Ok(generation) => {
            if culprits.is_empty() {
                tracing::warn!(
                    trials = trials.count,
                    "engine rebuilt in place; the panic did not happen again, so no input is quarantined"
                );
            }
            tracing::info!(
                quarantined = culprits.len(),
                trials = trials.count,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "engine rebuilt in place"
            );
            generation
        }
        Err(e) => give_up(host, &tail, frontier, what, Unrecoverable::Rebuild(e)),
    }
}

/// Stops the process (exit 70) for its supervisor to restart it; without a recovery point, the
/// inputs in flight (at or after the output frontier) are quarantined first, so that a restart
/// does not meet them again.
fn give_up(host: &Host, tail: &[Step], frontier: Time, what: &str, why: Unrecoverable) -> ! {
    let mut quarantined = 0;
    if matches!(why, Unrecoverable::NoRecoveryPoint | Unrecoverable::TooMany) {
        for addr in addresses(tail, frontier) {
            quarantined += usize::from(quarantine(host, tail, addr, what));
        }
    }
    let written = host.quarantine.flush(Duration::from_secs(10));
    tracing::error!(
        quarantined,
        written,
        "the engine cannot be rebuilt in place ({why}): stopping the process (exit {EXIT_ENGINE}) \
         for its supervisor to restart it"
    );
    std::process::exit(EXIT_ENGINE);
}

/// Quarantines the input at `addr` of `tail` (the panic said `what`); whether it is new.
fn quarantine(host: &Host, tail: &[Step], (step, pos): Addr, what: &str) -> bool {
    match tail.get(step) {
        Some(Step::Input {
            time,
            inputs,
            origin,
        }) => inputs
            .get(pos)
            .is_some_and(|input| host.quarantine.add(Entry::new(input, *time, *origin, what))),
        _ => false,
    }
}

/// The inputs of the steps at or after `from`, in order.
fn addresses(tail: &[Step], from: Time) -> Vec<Addr> {
    tail.iter()
        .enumerate()
        .filter(|(_, s)| s.time() >= from)
        .flat_map(|(i, s)| (0..s.inputs()).map(move |j| (i, j)))
        .collect()
}

/// Trial generations on the recovery point.
struct Trials<'a> {
    host: &'a Arc<Host>,
    base: Option<Arc<Snapshot>>,
    tail: &'a [Step],
    /// The time the panicked generation had reached.
    through: Time,
    count: usize,
}

impl<'a> Trials<'a> {
    fn new(host: &'a Arc<Host>, base: Option<Arc<Snapshot>>, tail: &'a [Step]) -> Trials<'a> {
        let through = tail
            .iter()
            .map(Step::time)
            .max()
            .unwrap_or_else(|| base.as_ref().map_or(0, |b| b.time));
        Trials {
            host,
            base,
            tail,
            through,
            count: 0,
        }
    }

    /// The inputs that make the engine panic, found by trials (see the module's header).
    fn isolate(&mut self, frontier: Time) -> Result<Vec<Addr>, Unrecoverable> {
        let mut suspects = addresses(self.tail, frontier);
        if self.panics(&suspects, 0, &[])? {
            // What completed before panics now: the cause is older.
            suspects = addresses(self.tail, 0);
            if self.panics(&suspects, 0, &[])? {
                return Err(Unrecoverable::NotAnInput);
            }
        }
        let mut culprits = Vec::new();
        while self.panics(&suspects, suspects.len(), &culprits)? {
            if culprits.len() == MAX_CULPRITS {
                return Err(Unrecoverable::TooMany);
            }
            // The shortest prefix that panics ends with a culprit: `lo` runs, `hi` panics.
            let (mut lo, mut hi) = (0, suspects.len());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.panics(&suspects, mid, &culprits)? {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            culprits.push(suspects[hi - 1]);
        }
        Ok(culprits)
    }

    /// Whether a generation fed the tail up to the first `keep` suspects (those before them
    /// all), without `excluded`, panics.
    fn panics(
        &mut self,
        suspects: &[Addr],
        keep: usize,
        excluded: &[Addr],
    ) -> Result<bool, Unrecoverable> {
        self.count += 1;
        // Suspects are the inputs from some step on: a prefix of them is everything before the
        // first one left out.
        let cut = suspects.get(keep).copied().unwrap_or((usize::MAX, 0));
        let steps = self
            .tail
            .iter()
            .enumerate()
            .map(|(i, step)| match step {
                Step::Input {
                    time,
                    inputs,
                    origin,
                } => Step::Input {
                    time: *time,
                    origin: *origin,
                    inputs: inputs
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| (i, *j) < cut && !excluded.contains(&(i, *j)))
                        .map(|(_, input)| input.clone())
                        .collect(),
                },
                other => other.clone(),
            })
            .collect();
        let plan = Plan {
            base: self.base.clone(),
            steps,
            mode: Mode::Trial {
                through: self.through,
            },
        };
        let generation = launch(self.host, plan).map_err(Unrecoverable::Rebuild)?;
        let panicked = matches!(generation.wait(), Outcome::Panicked { .. });
        tracing::debug!(
            trial = self.count,
            suspects = suspects.len(),
            keep,
            excluded = excluded.len(),
            panicked,
            "engine trial run"
        );
        Ok(panicked)
    }
}
