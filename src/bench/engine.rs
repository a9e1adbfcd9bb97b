//! Engine figures: input records through every registered derived event (as fast as possible, on
//! 1 and 2 workers), latency from input to complete-time output at the real-time rate, and
//! memory per tracked entity; the inputs are a generated recording decoded ahead of time, so only
//! the engine is measured.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmf_dash_dataflows::model::input::{Input, Kind, Names, RobotSource, inputs};
use rmf_dash_dataflows::ops::snapshot::Snapshot;
use rmf_dash_dataflows::prelude::Time;

use crate::engine::{Clock, Engine, EngineConfig, EngineError};
use crate::ingest::bag::{BagError, Recording};
use crate::ingest::decode::ReleasePolicy;
use crate::ingest::source::{Pacing, Replay, Source};

/// A recording as engine input batches, one per logical time.
pub struct Prepared {
    pub batches: Vec<(Time, Vec<Input>)>,
    pub records: u64,
    pub robot_updates: u64,
    /// Distinct entities (doors, lifts, workcells, robots, fleets, tasks).
    pub entities: usize,
    pub duration_ms: Time,
}

/// Decodes a recording into input batches.
pub fn prepare(path: &str, tick_ms: u64) -> Result<Prepared, BagError> {
    let recording = Recording::open(path)?;
    let mut source = Replay::new(recording, ReleasePolicy::default(), Pacing::Max);
    let mut clock = Clock::new(tick_ms);
    let mut names = Names::default();
    let mut batches: Vec<(Time, Vec<Input>)> = Vec::new();
    let (mut records, mut robot_updates) = (0u64, 0u64);
    let mut entities = BTreeSet::new();
    while let Some(item) = source.next_sample() {
        let Ok(sample) = item else { continue };
        let t = clock.time_of(sample.log_time);
        let Ok(new) = inputs(&sample.record, sample.log_time / 1_000_000, &mut names) else {
            continue;
        };
        for ((kind, name), _) in &new {
            records += 1;
            if matches!(kind, Kind::Robot(_)) {
                robot_updates += 1;
            }
            if !kind.is_log() {
                // A robot is one entity whichever source reports it.
                let kind = match kind {
                    Kind::Robot(_) => Kind::Robot(RobotSource::Ros),
                    k => *k,
                };
                entities.insert((kind, name.clone()));
            }
        }
        match batches.last_mut() {
            Some((bt, b)) if *bt == t => b.extend(new),
            _ => batches.push((t, new)),
        }
    }
    let duration_ms = match (batches.first(), batches.last()) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0,
    };
    Ok(Prepared {
        batches,
        records,
        robot_updates,
        entities: entities.len(),
        duration_ms,
    })
}

/// Resident memory of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Discards the engine's outputs on a thread of their own (join it after `finish`).
pub fn drain_outputs(engine: &mut Engine) -> std::thread::JoinHandle<()> {
    let outputs = engine.take_outputs();
    std::thread::spawn(move || {
        if let Some(mut rx) = outputs {
            while rx.blocking_recv().is_some() {}
        }
    })
}

/// Feeds every batch as fast as possible; returns the wall time until every output is delivered.
pub fn throughput(p: &Prepared, workers: usize) -> Result<Duration, EngineError> {
    let mut engine = Engine::start(EngineConfig {
        workers,
        ..Default::default()
    })?;
    let drain = drain_outputs(&mut engine);
    // Owned inputs, as a source produces them: copying them is not part of the measure.
    let batches = p.batches.clone();
    let start = Instant::now();
    for (t, batch) in batches {
        engine.input(t, batch)?;
    }
    engine.finish(p.batches.last().map_or(0, |b| b.0))?;
    let elapsed = start.elapsed();
    let _ = drain.join();
    Ok(elapsed)
}

/// The memory the engine keeps once every batch is processed (its state, arrangements and
/// buffers), in bytes: the batches are copied inside the counted window and freed by the
/// engine, so they do not count.
pub fn retained(p: &Prepared) -> Result<i64, EngineError> {
    super::memory::start();
    let mut engine = Engine::start(EngineConfig::default())?;
    let drain = drain_outputs(&mut engine);
    let last = p.batches.last().map_or(0, |b| b.0);
    for (t, batch) in &p.batches {
        engine.input(*t, batch.clone())?;
    }
    engine.advance(last + 1)?;
    while engine.delivered.load(Ordering::Acquire) <= last {
        std::thread::sleep(Duration::from_millis(5));
    }
    let bytes = super::memory::live();
    super::memory::stop();
    engine.finish(last)?;
    let _ = drain.join();
    Ok(bytes)
}

/// Latency percentiles of complete-time output, in ms.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub samples: usize,
}

/// A snapshot of the state after the whole trace, taken once the engine has processed every
/// input (what a snapshot costs at real time, where there is no backlog): how long the engine
/// held its input, and its size.
pub fn snapshot(p: &Prepared) -> Result<Option<Snapshot>, EngineError> {
    let mut engine = Engine::start(EngineConfig {
        // Periodic ones too rarely to happen here; the one measured is asked for.
        snapshot_every_ms: Some(Time::MAX / 4),
        ..Default::default()
    })?;
    let snapshots = engine.take_snapshots();
    let drain = drain_outputs(&mut engine);
    let last = p.batches.last().map_or(0, |b| b.0);
    for (t, batch) in &p.batches {
        engine.input(*t, batch.clone())?;
    }
    engine.advance(last + 1)?;
    engine.snapshot_now()?;
    engine.finish(last + 1)?;
    let _ = drain.join();
    Ok(snapshots.and_then(|mut rx| rx.try_recv().ok()))
}

/// Feeds the batches at their real-time pace (`speed` times real time) and measures, for every
/// batch, the time from handing it to the engine until every output of its logical time is
/// delivered. At most `limit_ms` of the recording is played.
pub fn latency(p: &Prepared, speed: f64, limit_ms: Time) -> Result<(Latency, u64), EngineError> {
    let mut engine = Engine::start(EngineConfig::default())?;
    let drain = drain_outputs(&mut engine);
    let delivered = engine.delivered.clone();
    let first = p.batches.first().map_or(0, |b| b.0);
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<(Time, Instant)>();
    // Watches the output frontier and times each batch until it has passed.
    let watcher = std::thread::spawn(move || {
        let mut waits = Vec::new();
        let mut pending: std::collections::VecDeque<(Time, Instant)> = Default::default();
        loop {
            loop {
                match sent_rx.try_recv() {
                    Ok(s) => pending.push_back(s),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return waits,
                }
            }
            let f = delivered.load(Ordering::Acquire);
            while pending.front().is_some_and(|(t, _)| *t < f) {
                if let Some((_, at)) = pending.pop_front() {
                    waits.push(at.elapsed());
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    });
    let start = Instant::now();
    let mut fed = 0u64;
    let mut last = first;
    for (t, batch) in &p.batches {
        if t - first > limit_ms {
            break;
        }
        let due = Duration::from_secs_f64((t - first) as f64 / 1000.0 / speed);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        // The clock moves time on as the wall clock does: time t is complete once it is past.
        engine.input(*t, batch.clone())?;
        engine.advance(*t + 1)?;
        let _ = sent_tx.send((*t, Instant::now()));
        fed += batch.len() as u64;
        last = *t;
    }
    // Let the last batches complete before closing.
    std::thread::sleep(Duration::from_millis(200));
    drop(sent_tx);
    let mut waits = watcher.join().unwrap_or_default();
    engine.finish(last)?;
    let _ = drain.join();
    waits.sort();
    let pct = |q: f64| {
        waits
            .get(((waits.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok((
        Latency {
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            max_ms: pct(1.0),
            samples: waits.len(),
        },
        fed,
    ))
}
