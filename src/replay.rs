//! `rmf-dash replay`: runs a recording through the engine and emits every output change.
//!
//! With `--emit jsonl` each change is one line `{"time": ms, "room": "...", "diff": 1|-1,
//! "value": {...}}`, ordered by time, then room (a retraction before the insertion that replaces
//! it). This output is a function of the recording alone: the same at any speed and any worker
//! count (the contract derived events are checked against end to end).

use std::io::Write;
use std::sync::Arc;

use thiserror::Error;

use rmf_dash_dataflows::model::Record;
use rmf_dash_dataflows::prelude::Time;

use crate::engine::{Batch, Clock, Engine, EngineConfig, EngineError};
use crate::hub::Hub;
use crate::ingest::bag::{BagError, Recording};
use crate::ingest::decode::ReleasePolicy;
use crate::ingest::feed::{Feed, FeedHandle, Feeder, Source, Stamp};
use crate::ingest::source::{Pacing, Replay, Source as _, SourceError};
use crate::progress::Progress;
use crate::store::{StoreError, WriterConfig, leader, pipeline};

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    Bag(#[from] BagError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("writing output")]
    Io(#[from] std::io::Error),
    #[error("starting the store's runtime and threads")]
    Start(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub pacing: Pacing,
    pub policy: ReleasePolicy,
    pub tick_ms: u64,
    pub engine: EngineConfig,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    pub messages: u64,
    pub dropped: u64,
    pub invalid: u64,
    pub changes: u64,
    pub last_time: Time,
    /// The logical time after the last record taken ([`drive`]); `None` when none was.
    pub end: Option<Time>,
}

/// Replays at a speed: waits for each message's due time, moving the engine's logical time on
/// every tick meanwhile.
struct Pacer {
    speed: Option<f64>,
    tick_ms: u64,
    /// Wall-clock start and log time (ns) of the first message.
    origin: Option<(std::time::Instant, u64)>,
}

impl Pacer {
    fn new(pacing: Pacing, tick_ms: u64) -> Self {
        Pacer {
            speed: match pacing {
                Pacing::Max => None,
                Pacing::Speed(x) => Some(x),
            },
            tick_ms: tick_ms.max(1),
            origin: None,
        }
    }

    /// Blocks until the message received at `log_time` (ns) is due; `advance` is called with the
    /// logical time (ms) reached on every tick of the wait.
    fn wait_for(
        &mut self,
        log_time: u64,
        mut advance: impl FnMut(Time) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let Some(speed) = self.speed else {
            return Ok(());
        };
        let (start, first) = *self
            .origin
            .get_or_insert((std::time::Instant::now(), log_time));
        let due =
            std::time::Duration::from_secs_f64(log_time.saturating_sub(first) as f64 / 1e9 / speed);
        loop {
            let elapsed = start.elapsed();
            let Some(left) = due.checked_sub(elapsed) else {
                return Ok(());
            };
            std::thread::sleep(left.min(std::time::Duration::from_millis(self.tick_ms)));
            let reached_ns = first + (start.elapsed().as_secs_f64() * speed * 1e9) as u64;
            let reached = reached_ns / 1_000_000 / self.tick_ms * self.tick_ms;
            advance(reached)?;
        }
    }
}

/// Writes one batch as JSON lines, ordered by room (retraction first within a room).
pub fn write_jsonl(batch: &Batch, out: &mut impl Write) -> std::io::Result<u64> {
    let mut changes: Vec<_> = batch.changes.iter().collect();
    changes.sort_by(|(a, da), (b, db)| (&a.room, da, &a.value).cmp(&(&b.room, db, &b.value)));
    for (o, d) in &changes {
        let room = serde_json::to_string(&o.room).map_err(std::io::Error::from)?;
        writeln!(
            out,
            "{{\"time\":{},\"room\":{room},\"diff\":{d},\"value\":{}}}",
            batch.time,
            o.value.as_str()
        )?;
    }
    Ok(changes.len() as u64)
}

/// Where a replay puts its records: a feeder in this thread, or the channel of a server's
/// feeder thread.
pub trait Sink {
    fn record(&mut self, record: Record, log_time: u64) -> Result<(), EngineError>;
    fn advance(&mut self, t: Time) -> Result<(), EngineError>;
    /// Whether the record received at `log_time` is skipped (a resumed recording): skipped
    /// records are not paced, the replay's clock starts at the first record taken.
    fn skips(&self, _log_time: u64) -> bool {
        false
    }
}

impl Sink for Feeder {
    fn record(&mut self, record: Record, log_time: u64) -> Result<(), EngineError> {
        Feeder::record(self, &record, Stamp::Recorded(log_time), Source::Replay)
    }

    fn advance(&mut self, t: Time) -> Result<(), EngineError> {
        Feeder::advance(self, t)
    }
}

impl Sink for FeedHandle {
    fn record(&mut self, record: Record, log_time: u64) -> Result<(), EngineError> {
        let item = Feed::Record {
            record: Box::new(record),
            stamp: Stamp::Recorded(log_time),
            source: Source::Replay,
        };
        self.blocking_send(item)
            .then_some(())
            .ok_or(EngineError::Stopped)
    }

    fn advance(&mut self, t: Time) -> Result<(), EngineError> {
        self.blocking_send(Feed::Advance(t))
            .then_some(())
            .ok_or(EngineError::Stopped)
    }
}

/// Reads a recording into `sink` at the options' pace (as fast as possible, or a speed with the
/// clock moving logical time on while waiting), counting into `summary`; shows progress.
pub fn drive(
    path: &str,
    opts: &ReplayOptions,
    sink: &mut impl Sink,
    summary: &mut ReplaySummary,
) -> Result<(), ReplayError> {
    let recording = Recording::open(path)?;
    let total = recording.counts.as_ref().map(|c| c.iter().sum());
    let mut source = Replay::new(recording, opts.policy, Pacing::Max);
    let mut pacer = Pacer::new(opts.pacing, opts.tick_ms);
    let mut progress = Progress::new(format!("replaying {path}"), total);
    let mut last = None;
    while let Some(item) = source.next_sample() {
        summary.messages += 1;
        progress.inc(1);
        let sample = match item {
            Ok(s) => s,
            Err(SourceError::Bag(b)) => return Err(ReplayError::Bag(b)),
            Err(e) => {
                summary.dropped += 1;
                tracing::warn!("dropped: {}", crate::error::chain(&e));
                continue;
            }
        };
        if sink.skips(sample.log_time) {
            continue;
        }
        let t = Clock::logical(sample.log_time, opts.tick_ms);
        pacer.wait_for(sample.log_time, |now| {
            sink.advance(now.min(t.saturating_sub(1)))
        })?;
        sink.record(sample.record, sample.log_time)?;
        last = Some(t);
    }
    // The recording's last time is complete: its outputs can go out.
    if let Some(t) = last {
        sink.advance(t + 1)?;
    }
    summary.end = last.map(|t| t + 1);
    progress.finish(&format!(
        "{} messages, {} dropped",
        summary.messages, summary.dropped
    ));
    Ok(())
}

/// Replays `path` through a new engine; every output batch goes to `emit` (on its own thread).
pub fn run<W: Write + Send + 'static>(
    path: &str,
    opts: &ReplayOptions,
    emit: Option<W>,
) -> Result<ReplaySummary, ReplayError> {
    // Without a store the snapshots are not exported, but the engine still takes them: each is
    // its recovery point, and bounds the inputs it keeps to rebuild after a worker panic.
    let mut engine = Engine::start(opts.engine.clone())?;
    let outputs = engine.take_outputs();
    let writer = std::thread::Builder::new()
        .name("replay-output".into())
        .spawn(move || -> std::io::Result<u64> {
            let Some(mut rx) = outputs else { return Ok(0) };
            let mut emit = emit.map(|w| std::io::BufWriter::with_capacity(1 << 16, w));
            let mut n = 0;
            while let Some(batch) = rx.blocking_recv() {
                match &mut emit {
                    Some(w) => n += write_jsonl(&batch, w)?,
                    None => n += batch.changes.len() as u64,
                }
            }
            if let Some(w) = &mut emit {
                w.flush()?;
            }
            Ok(n)
        })?;
    let mut summary = ReplaySummary::default();
    if !engine.delivers {
        // A cluster member other than process 0: its workers take part until process 0 ends.
        engine.finish(0)?;
        return Ok(summary);
    }
    let mut feeder = Feeder::new(engine, opts.tick_ms, true);
    let drove = drive(path, opts, &mut feeder, &mut summary);
    summary.invalid = feeder
        .metrics
        .invalid
        .iter()
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let last = feeder.finish()?;
    drove?;
    summary.last_time = last;
    summary.changes = writer
        .join()
        .map_err(|_| std::io::Error::other("output thread panicked"))??;
    tracing::info!(
        messages = summary.messages,
        changes = summary.changes,
        dropped = summary.dropped,
        "replay of {path} done"
    );
    Ok(summary)
}

/// A sink resuming a recording after a stored checkpoint: records of a logical time up to
/// `after` (already in the store, and fed to the engine from its input log) are skipped.
pub struct Resume<S> {
    pub inner: S,
    pub after: Option<Time>,
    pub tick_ms: u64,
}

impl<S: Sink> Sink for Resume<S> {
    fn record(&mut self, record: Record, log_time: u64) -> Result<(), EngineError> {
        if self
            .after
            .is_some_and(|c| Clock::logical(log_time, self.tick_ms) <= c)
        {
            return Ok(());
        }
        self.inner.record(record, log_time)
    }

    fn advance(&mut self, t: Time) -> Result<(), EngineError> {
        if self.after.is_some_and(|c| t <= c) {
            return Ok(());
        }
        self.inner.advance(t)
    }

    fn skips(&self, log_time: u64) -> bool {
        self.after
            .is_some_and(|c| Clock::logical(log_time, self.tick_ms) <= c)
    }
}

/// `rmf-dash replay FILE` into the store: takes the leadership of the site (refused while a
/// `serve` of the site is active), restores what the store holds, skips the records it already
/// has (times up to the checkpoint), writes the rest. `emit` gets the batches after the
/// checkpoint as JSON lines.
pub fn into_store<W: Write + Send + 'static>(
    path: &str,
    opts: &ReplayOptions,
    mut config: WriterConfig,
    emit: Option<W>,
) -> Result<ReplaySummary, ReplayError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ReplayError::Start)?;
    let leadership = leader::Leadership::standby(&config.leader.site);
    let lease = runtime
        .block_on(leader::try_acquire(
            &config.url,
            &config.leader,
            &leadership,
        ))?
        .ok_or_else(|| StoreError::Busy {
            site: config.leader.site.clone(),
        })?;
    config.fence = Some(lease.fence());
    runtime.spawn(async move {
        let why = leadership.deposed().await;
        tracing::error!("replay into the store stopped: {why}");
        std::process::exit(i32::from(leader::STEP_DOWN_EXIT));
    });
    let hub = Arc::new(Hub::new());
    let mut restoring = runtime.block_on(pipeline::restore_start(config, &hub))?;
    let mut engine = restoring.start_engine(opts.engine.clone())?;
    let horizon = restoring.checkpoint;
    let on_batch = emit.map(|w| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        Box::new(move |b: &Batch| {
            if write_jsonl(b, &mut w).and_then(|_| w.flush()).is_err() {
                tracing::warn!("writing the emitted output failed");
            }
        }) as Box<dyn FnMut(&Batch) + Send>
    });
    let applier = match engine.take_outputs() {
        Some(outputs) => Some(
            pipeline::spawn_applier(
                outputs,
                pipeline::Applier {
                    hub,
                    store: Some(restoring.store.clone()),
                    delivered: engine.delivered.clone(),
                    horizon,
                    on_batch,
                    snapshots: engine.take_snapshots(),
                    running: None,
                },
                runtime.handle().clone(),
            )
            .map_err(ReplayError::Start)?,
        ),
        None => None,
    };
    runtime.block_on(restoring.feed(&engine))?;
    let writer = restoring.take_writer();
    let store = restoring.store;
    let mut feeder = Feeder::new(engine, opts.tick_ms, true);
    feeder.set_input_log(pipeline::input_log(store));
    let mut sink = Resume {
        inner: feeder,
        after: horizon,
        tick_ms: opts.tick_ms,
    };
    if let Some(c) = horizon {
        tracing::info!(
            checkpoint = c,
            "resuming the recording after the checkpoint"
        );
    }
    let mut summary = ReplaySummary::default();
    let drove = drive(path, opts, &mut sink, &mut summary);
    let last = sink.inner.finish()?;
    drove?;
    summary.last_time = last;
    if let Some(a) = applier {
        let _ = a.join();
    }
    if let Some(w) = writer {
        let _ = runtime.block_on(w);
    }
    drop(lease);
    tracing::info!(
        messages = summary.messages,
        "replay of {path} into the store done"
    );
    Ok(summary)
}
