//! Wiring of the store into a run (`serve`, and `replay` into the store:
//! [`crate::replay::into_store`]): opening the store (migrations, checkpoint), the output applier
//! thread (engine batches -> hub -> writer), and the input-log tap of the feeder.
//!
//! Restore and duplicates: after a restart the engine starts from the stored snapshot `S <= C`
//! (if any fits) and is fed the stored inputs after it up to the checkpoint `C`, and recomputes
//! the outputs of those times. They are already stored and already
//! in the hub (seeded from `room_state`), so the applier drops every batch of a time `<= C`
//! (the *horizon*): the hub applies, and the writer writes, only batches after `C`, whose
//! sequence numbers continue from the stored ones. Replays skip the records of times `<= C`
//! ([`crate::replay::Resume`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;

use rmf_dash_dataflows::ops::snapshot::Snapshot;
use rmf_dash_dataflows::prelude::Time;

use super::rows::Msg;
use super::writer::{self, StoreHandle, WriterConfig};
use super::{StoreError, connect, migrate, restore};
use crate::engine::{Batch, Engine, EngineConfig, EngineError};
use crate::hub::Hub;
use crate::ingest::feed::{Feeder, InputLog};

/// Connects, applies the migrations and reads the checkpoint.
pub async fn open(url: &str) -> Result<(tokio_postgres::Client, Option<Time>), StoreError> {
    let mut client = connect(url).await?;
    let version = migrate::run(&mut client).await?;
    let checkpoint = super::checkpoint(&client).await?;
    tracing::info!(schema = version, checkpoint, "store opened");
    Ok((client, checkpoint))
}

/// A store being restored into a run: the writer is running; [`Restoring::start_engine`] starts
/// the engine from the stored snapshot, [`Restoring::feed`] then rebuilds the rest of its state.
pub struct Restoring {
    client: tokio_postgres::Client,
    pub checkpoint: Option<Time>,
    pub store: StoreHandle,
    writer: Option<tokio::task::JoinHandle<()>>,
    /// The latest stored snapshot at or before the checkpoint.
    snapshot: Option<Snapshot>,
    /// The time of the snapshot the engine started from: the input log is fed after it.
    from: Option<Time>,
}

/// Opens the store, seeds `hub` with the stored rooms and starts the writer (call inside a
/// multi-threaded tokio runtime).
pub async fn restore_start(config: WriterConfig, hub: &Hub) -> Result<Restoring, StoreError> {
    let (client, checkpoint) = open(&config.url).await?;
    let started = std::time::Instant::now();
    let (rooms, skipped) = restore::seed_hub(&client, hub).await?;
    tracing::info!(
        rooms,
        skipped,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sticky values restored from the store"
    );
    let snapshot = match checkpoint {
        Some(c) => restore::load_snapshot(&client, c).await?,
        None => None,
    };
    let writer_client = connect(&config.url).await?;
    let (store, writer) = writer::spawn(config, writer_client, checkpoint);
    Ok(Restoring {
        client,
        checkpoint,
        store,
        writer: Some(writer),
        snapshot,
        from: None,
    })
}

impl Restoring {
    /// Starts the engine: from the stored snapshot when there is one and it fits the engine
    /// (same build, configuration and worker count), else empty (the whole input log is fed).
    pub fn start_engine(&mut self, config: EngineConfig) -> Result<Engine, EngineError> {
        if let Some(snapshot) = self.snapshot.take() {
            let (time, started) = (snapshot.time, std::time::Instant::now());
            match Engine::start_restored(config.clone(), snapshot) {
                Ok(engine) => {
                    self.from = Some(time);
                    tracing::info!(
                        time,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "dataflow state loaded from the snapshot"
                    );
                    return Ok(engine);
                }
                Err(EngineError::Restore(why)) => tracing::warn!(
                    time,
                    "the stored snapshot is not used ({why}): the whole input log is fed"
                ),
                Err(e) => return Err(e),
            }
        }
        Engine::start(config)
    }

    /// The writer task (taken once): it ends after every [`StoreHandle`] is dropped.
    pub fn take_writer(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.writer.take()
    }

    /// The rebuild of the engine's state as feeder work (run on the feeder thread, before any
    /// new input): feeds the stored input log up to the checkpoint. A failure stops the feed.
    pub fn prelude(self, runtime: tokio::runtime::Handle) -> crate::ingest::feed::Prelude {
        Box::new(move |feeder: &Feeder| {
            runtime.block_on(self.feed(feeder.engine())).map_err(|e| {
                tracing::error!(
                    "restoring the dataflow state failed: {}",
                    crate::error::chain(&e)
                );
                EngineError::Stopped
            })
        })
    }

    /// Feeds the stored input log up to the checkpoint to `engine`.
    pub async fn feed(&self, engine: &Engine) -> Result<(), StoreError> {
        let Some(c) = self.checkpoint else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let (inputs, skipped) = restore::feed_engine(&self.client, engine, self.from, c).await?;
        tracing::info!(
            inputs,
            skipped,
            after = self.from,
            checkpoint = c,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dataflow state rebuilt from the input log"
        );
        Ok(())
    }
}

/// The feeder's tap sending every engine command's inputs to the writer.
pub fn input_log(store: StoreHandle) -> InputLog {
    let mut last: Option<(Time, u32)> = None;
    let mut failed = false;
    Box::new(move |time, inputs| {
        let cmd = match last {
            Some((t, c)) if t == time => c + 1,
            _ => 0,
        };
        last = Some((time, cmd));
        let msg = Msg::Inputs {
            time,
            cmd,
            inputs: inputs.to_vec(),
        };
        if store.send(msg).is_err() && !failed {
            failed = true;
            tracing::error!("the store writer has stopped: inputs are no longer logged");
        }
    })
}

/// What the output applier does with each batch.
pub struct Applier {
    pub hub: Arc<Hub>,
    pub store: Option<StoreHandle>,
    /// The engine's output frontier.
    pub delivered: Arc<AtomicU64>,
    /// Batches of a time up to this one are dropped (restored from the store).
    pub horizon: Option<Time>,
    /// Called with every applied batch (replay's `--emit`).
    pub on_batch: Option<Box<dyn FnMut(&Batch) + Send>>,
    /// The engine's snapshots, sent to the writer.
    pub snapshots: Option<UnboundedReceiver<Snapshot>>,
    /// Cleared when the engine's output ends.
    pub running: Option<Arc<AtomicBool>>,
}

impl Applier {
    fn handle(&mut self, batch: Batch) {
        if self.horizon.is_some_and(|h| batch.time <= h) {
            return;
        }
        let seqs = self.hub.apply_with_seqs(&batch);
        if let Some(f) = &mut self.on_batch {
            f(&batch);
        }
        if let Some(s) = &self.store
            && s.send(Msg::Outputs { batch, seqs }).is_err()
        {
            tracing::error!("the store writer has stopped: outputs are no longer stored");
            self.store = None;
        }
    }

    /// Sends the engine's new snapshots to the writer (encoded here, off the writer's task).
    fn forward_snapshots(&mut self) {
        let (Some(rx), Some(store)) = (&mut self.snapshots, &self.store) else {
            return;
        };
        while let Ok(s) = rx.try_recv() {
            match restore::encode_snapshot(&s) {
                Ok(data) => {
                    let _ = store.send(Msg::Snapshot {
                        time: s.time,
                        fingerprint: s.fingerprint,
                        data,
                    });
                }
                Err(e) => tracing::warn!(time = s.time, "encoding a snapshot failed: {e}"),
            }
        }
    }
}

/// Runs the applier on its own thread: every batch goes to the hub (which never waits), then to
/// the writer, followed by the engine's output frontier (loaded before the batches below it are
/// drained, so the writer only sees a frontier once it has every batch before it).
pub fn spawn_applier(
    mut outputs: UnboundedReceiver<Batch>,
    mut applier: Applier,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rmf-dash-hub".into())
        .spawn(move || {
            let mut sent: Time = 0;
            loop {
                let frontier = applier.delivered.load(Ordering::Acquire);
                let mut closed = false;
                loop {
                    match outputs.try_recv() {
                        Ok(b) => applier.handle(b),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                applier.forward_snapshots();
                if let Some(s) = &applier.store {
                    // The engine has ended: every output it will give has been given.
                    let f = if closed { Time::MAX } else { frontier };
                    if f > sent {
                        sent = f;
                        let _ = s.send(Msg::Frontier(f));
                    }
                }
                if closed {
                    break;
                }
                if applier.store.is_none() {
                    match outputs.blocking_recv() {
                        Some(b) => applier.handle(b),
                        None => continue,
                    }
                } else {
                    let next = runtime.block_on(async {
                        tokio::time::timeout(Duration::from_millis(20), outputs.recv()).await
                    });
                    // A closed channel is seen by `try_recv` at the top; a timeout only loops.
                    if let Ok(Some(b)) = next {
                        applier.handle(b);
                    }
                }
            }
            if let Some(r) = &applier.running {
                r.store(false, Ordering::Relaxed);
            }
            tracing::info!("engine output ended");
        })
}
