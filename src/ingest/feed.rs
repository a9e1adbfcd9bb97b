//! The single entry of inputs into the engine: stamps every decoded record with its logical time
//! (DESIGN.md invariant 1), turns it into engine inputs, batches them per logical time, and moves
//! time on when no data comes.
//!
//! - A recorded sample's logical time is its `log_time`; a live one's is the ingest clock (wall
//!   clock) — or, while a recording is replayed into a live server, the replay's current time, so
//!   that both share one clock.
//! - One thread owns the [`Feeder`]; other producers (the replay thread, `/_internal` sockets)
//!   send [`Feed`] items through a bounded channel ([`spawn`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmf_dash_dataflows::model::Record;
use rmf_dash_dataflows::model::input::{Input, Names, inputs};
use rmf_dash_dataflows::model::ros::BuildingMap;
use rmf_dash_dataflows::prelude::Time;

use crate::engine::{Clock, Engine, EngineError};

/// When a record was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// From a recording: its log time (ns).
    Recorded(u64),
    /// Just now.
    Live,
}

/// What producers send to the feeder thread.
#[derive(Debug)]
pub enum Feed {
    Record {
        record: Box<Record>,
        stamp: Stamp,
        source: Source,
    },
    /// Inputs the producer already decoded from a record (the `/_internal` frames, checked on
    /// the connection's task so that the feeder does not parse them again).
    Inputs {
        inputs: Vec<Input>,
        stamp: Stamp,
        source: Source,
    },
    /// Logical time reached with no data (a replay's clock).
    Advance(Time),
    /// The recording that drives the clock has ended at this time: time stands still from
    /// there, and moves on by one tick to deliver what arrives live (alerts, dispatched tasks),
    /// so that a demo keeps working after its recording, without the silence timeouts every
    /// device would reach if the clock ran on.
    ReplayEnded(Time),
}

/// Which producer a record came from (counters per source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Replay = 0,
    Internal = 1,
    Ros = 2,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Replay, Source::Internal, Source::Ros];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Replay => "replay",
            Source::Internal => "internal",
            Source::Ros => "ros",
        }
    }
}

/// Counters per source, read by `/metrics`.
#[derive(Debug, Default)]
pub struct FeedMetrics {
    pub records: [AtomicU64; 3],
    /// Records that gave no input (invalid JSON updates and the like).
    pub invalid: [AtomicU64; 3],
    /// The latest logical time fed.
    pub time: AtomicU64,
    /// Fleet and robot names taken in, and inputs dropped beyond their bounds.
    pub names: super::admission::NameMetrics,
}

/// One image of a building map level: its encoding (`png`, ...) and bytes.
#[derive(Debug, Clone)]
pub struct MapImage {
    pub encoding: String,
    pub data: Arc<[u8]>,
}

/// The images of the latest building map, by (level, image name). The engine's `/building_map`
/// payload replaces each image's bytes by its URL; `GET /building_map/images/{level}/{image}`
/// serves them from here. Filled by the feeder when a map passes (a new map replaces them all).
#[derive(Debug, Default)]
pub struct MapImages(parking_lot::RwLock<HashMap<(String, String), MapImage>>);

impl MapImages {
    /// Keeps the images of `map`, forgetting those of the previous one.
    pub fn replace(&self, map: &BuildingMap) {
        let images = map
            .levels
            .iter()
            .flat_map(|level| {
                level.images.iter().map(move |image| {
                    (
                        (level.name.to_string(), image.name.to_string()),
                        MapImage {
                            encoding: image.encoding.to_string(),
                            data: Arc::from(image.data.as_slice()),
                        },
                    )
                })
            })
            .collect();
        *self.0.write() = images;
    }

    pub fn get(&self, level: &str, image: &str) -> Option<MapImage> {
        self.0
            .read()
            .get(&(level.to_string(), image.to_string()))
            .cloned()
    }
}

/// Stamps and batches records into the engine. Owned by one thread.
pub struct Feeder {
    engine: Engine,
    clock: Clock,
    names: Names,
    batch_time: Time,
    batch: Vec<Input>,
    /// Whether a recording drives the clock (live records then take its current time).
    replaying: bool,
    /// The recording has ended ([`Feed::ReplayEnded`]).
    replay_ended: bool,
    pub metrics: Arc<FeedMetrics>,
    /// The images of the latest building map that passed.
    pub images: Arc<MapImages>,
    /// Sees every engine command's inputs before the engine does (the store's input log).
    input_log: Option<InputLog>,
    /// The latest time the engine was advanced to (inputs of an earlier time take this one).
    advanced: Time,
    /// The fleet and robot names taken in (unbounded unless set).
    admission: super::admission::Admission,
}

/// A tap on the inputs fed to the engine: `(logical time, inputs of one engine command)`.
pub type InputLog = Box<dyn FnMut(Time, &[Input]) + Send>;

fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Feeder {
    pub fn new(engine: Engine, tick_ms: u64, replaying: bool) -> Self {
        Feeder {
            engine,
            clock: Clock::new(tick_ms),
            names: Names::default(),
            batch_time: 0,
            batch: Vec::new(),
            replaying,
            replay_ended: false,
            metrics: Arc::new(FeedMetrics::default()),
            images: Arc::new(MapImages::default()),
            input_log: None,
            advanced: 0,
            admission: Default::default(),
        }
    }

    /// Bounds the fleet and robot names taken in (see [`super::admission`]).
    pub fn set_name_bounds(&mut self, bounds: super::admission::NameBounds) {
        self.admission = super::admission::Admission::new(bounds);
    }

    /// Sends every engine command's inputs to `log` first (with the time the engine takes them
    /// at), so that they can be fed again in the same commands after a restart.
    pub fn set_input_log(&mut self, log: InputLog) {
        self.input_log = Some(log);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The current logical time.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    fn flush(&mut self) -> Result<(), EngineError> {
        if !self.batch.is_empty() {
            if let Some(log) = &mut self.input_log {
                log(self.batch_time.max(self.advanced), &self.batch);
            }
            self.engine
                .input(self.batch_time, std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }

    /// The logical time and receive time (unix ms) of a record stamped `stamp`; starts a new
    /// batch when the time moves.
    fn stamp(&mut self, stamp: Stamp) -> Result<(Time, u64), EngineError> {
        let (t, unix_ms) = match stamp {
            Stamp::Recorded(ns) => (self.clock.time_of(ns), ns / 1_000_000),
            // The replay's current time: its latest record, or where its clock has moved
            // time on to (after the recording's end too, see `Feed::ReplayEnded`).
            Stamp::Live if self.replaying => {
                let t = self.clock.now().max(self.batch_time).max(self.advanced);
                (t, t)
            }
            Stamp::Live => {
                let ns = wall_ns();
                (self.clock.time_of(ns), ns / 1_000_000)
            }
        };
        if t != self.batch_time {
            self.flush()?;
            self.batch_time = t;
        }
        Ok((t, unix_ms))
    }

    /// Takes one record. An invalid one is counted and logged; it never stops the feed.
    pub fn record(
        &mut self,
        record: &Record,
        stamp: Stamp,
        source: Source,
    ) -> Result<(), EngineError> {
        let (t, unix_ms) = self.stamp(stamp)?;
        self.metrics.records[source as usize].fetch_add(1, Ordering::Relaxed);
        if let Record::BuildingMap(map) = record {
            self.images.replace(map);
        }
        match inputs(record, unix_ms, &mut self.names) {
            Ok(mut i) => {
                self.admission
                    .admit(&mut i, source.as_str(), &self.metrics.names);
                self.batch.extend(i);
            }
            Err(e) => {
                self.metrics.invalid[source as usize].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = source.as_str(), "invalid input: {e}");
            }
        }
        self.metrics.time.store(t, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the inputs of one record its producer decoded (see [`Feed::Inputs`]).
    pub fn inputs(
        &mut self,
        mut inputs: Vec<Input>,
        stamp: Stamp,
        source: Source,
    ) -> Result<(), EngineError> {
        let (t, _) = self.stamp(stamp)?;
        self.metrics.records[source as usize].fetch_add(1, Ordering::Relaxed);
        self.admission
            .admit(&mut inputs, source.as_str(), &self.metrics.names);
        self.batch.extend(inputs);
        self.metrics.time.store(t, Ordering::Relaxed);
        Ok(())
    }

    /// Moves logical time to `t` (no data before `t` will come).
    pub fn advance(&mut self, t: Time) -> Result<(), EngineError> {
        if t > self.batch_time {
            self.flush()?;
        }
        self.advanced = self.advanced.max(t);
        self.engine.advance(t)
    }

    /// The recording driving the clock ended at `end` (see [`Feed::ReplayEnded`]).
    pub fn replay_ended(&mut self, end: Time) -> Result<(), EngineError> {
        self.replay_ended = true;
        self.advance(end)
    }

    /// In live mode: moves logical time to the wall clock (called on every tick). While a
    /// recording drives it: sends what is pending; after its end, completes it one tick on.
    pub fn tick(&mut self) -> Result<(), EngineError> {
        if self.replaying && self.replay_ended && !self.batch.is_empty() {
            let next = self.batch_time.max(self.advanced) + self.clock.tick_ms();
            return self.advance(next);
        }
        if self.replaying {
            return self.flush();
        }
        let now = self.clock.time_of(wall_ns());
        self.advance(now)
    }

    /// Sends what is pending and stops the engine once every output up to the last time is out.
    pub fn finish(mut self) -> Result<Time, EngineError> {
        self.flush()?;
        let last = self.clock.now();
        self.engine.finish(last)?;
        Ok(last)
    }
}

/// A handle for producers.
#[derive(Clone)]
pub struct FeedHandle {
    tx: tokio::sync::mpsc::Sender<Feed>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl FeedHandle {
    /// Sends from async code, waiting while the feeder is behind (backpressure). `false` once the
    /// feed is closed.
    pub async fn send(&self, item: Feed) -> bool {
        !self.closed.load(Ordering::Relaxed) && self.tx.send(item).await.is_ok()
    }

    /// Sends from a thread, blocking while the feeder is behind.
    pub fn blocking_send(&self, item: Feed) -> bool {
        !self.closed.load(Ordering::Relaxed) && self.tx.blocking_send(item).is_ok()
    }

    /// Refuses every later send (shutdown): producers stop, and the feeder ends once the
    /// handles are dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Items waiting for the feeder.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Runs a feeder on its own thread; it ends (finishing the engine) when every handle is dropped.
pub fn spawn(
    feeder: Feeder,
    capacity: usize,
    tick: Duration,
) -> std::io::Result<(
    FeedHandle,
    Arc<FeedMetrics>,
    std::thread::JoinHandle<Result<Time, EngineError>>,
)> {
    spawn_after(feeder, capacity, tick, None)
}

/// Work the feeder thread does before taking any item (producers queue meanwhile).
pub type Prelude = Box<dyn FnOnce(&Feeder) -> Result<(), EngineError> + Send>;

/// [`spawn`], running `first` on the feeder thread before the first item: the store's restore
/// feeds the engine there while the server already answers and producers already queue.
pub fn spawn_after(
    feeder: Feeder,
    capacity: usize,
    tick: Duration,
    first: Option<Prelude>,
) -> std::io::Result<(
    FeedHandle,
    Arc<FeedMetrics>,
    std::thread::JoinHandle<Result<Time, EngineError>>,
)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Feed>(capacity.max(1));
    let metrics = feeder.metrics.clone();
    let thread = std::thread::Builder::new()
        .name("rmf-dash-feeder".into())
        .spawn(move || {
            let mut feeder = feeder;
            if let Some(first) = first {
                first(&feeder)?;
            }
            let mut last_tick = std::time::Instant::now();
            loop {
                // Wait for an item, at most until the next tick.
                let item = match rx.try_recv() {
                    Ok(item) => Some(item),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                        std::thread::sleep(tick.min(Duration::from_millis(1)));
                        None
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
                };
                match item {
                    Some(Feed::Record {
                        record,
                        stamp,
                        source,
                    }) => feeder.record(&record, stamp, source)?,
                    Some(Feed::Inputs {
                        inputs,
                        stamp,
                        source,
                    }) => feeder.inputs(inputs, stamp, source)?,
                    Some(Feed::Advance(t)) => feeder.advance(t)?,
                    Some(Feed::ReplayEnded(t)) => feeder.replay_ended(t)?,
                    None => {}
                }
                if last_tick.elapsed() >= tick {
                    last_tick = std::time::Instant::now();
                    feeder.tick()?;
                }
            }
            feeder.finish()
        })?;
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    Ok((FeedHandle { tx, closed }, metrics, thread))
}
