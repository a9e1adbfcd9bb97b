//! `bench` section `store`: rows per second the store writer sustains on one connection when the
//! engine's inputs and outputs of the trace arrive as fast as possible, next to a raw binary COPY
//! of the same append-only rows in one transaction (the limit to approach), on the same throwaway
//! PostgreSQL cluster (fsync on); and the time a restart takes to serve the stored sticky values
//! and to rebuild the dataflow state from the latest snapshot and the input log after it, next to
//! a rebuild from the whole input log.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{BenchError, Figure, rate};
use crate::engine::{Engine, EngineConfig};
use crate::hub::Hub;
use crate::ingest::decode::ReleasePolicy;
use crate::ingest::feed::Feeder;
use crate::ingest::source::Pacing;
use crate::replay::{ReplayOptions, ReplaySummary};
use crate::store::prune::Retention;
use crate::store::rows::{Msg, WriteSet};
use crate::store::{
    LocalPg, StoreError, WriterConfig, connect, migrate, partitions, restore, stats, writer,
};

/// The snapshot period of the captured run (the default of `--snapshot-every`).
const SNAPSHOT_EVERY_MS: u64 = crate::engine::DEFAULT_SNAPSHOT_EVERY_S * 1000;

/// Every message the writer would receive for the trace, in the order it would (snapshots
/// included).
fn capture(path: &str) -> Result<Vec<Msg>, BenchError> {
    let mut engine = Engine::start(EngineConfig {
        snapshot_every_ms: Some(SNAPSHOT_EVERY_MS),
        ..EngineConfig::default()
    })?;
    let outputs = engine.take_outputs();
    let snapshots = engine.take_snapshots();
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    let out_tx = tx.clone();
    let applier = std::thread::spawn(move || {
        let hub = Hub::new();
        let (Some(mut outputs), Some(mut snapshots)) = (outputs, snapshots) else {
            return;
        };
        while let Some(batch) = outputs.blocking_recv() {
            let seqs = hub.apply_with_seqs(&batch);
            let next = batch.time + 1;
            let _ = out_tx.send(Msg::Outputs { batch, seqs });
            while let Ok(s) = snapshots.try_recv() {
                if let Ok(data) = restore::encode_snapshot(&s) {
                    let _ = out_tx.send(Msg::Snapshot {
                        time: s.time,
                        fingerprint: s.fingerprint,
                        data,
                    });
                }
            }
            let _ = out_tx.send(Msg::Frontier(next));
        }
    });
    let mut feeder = Feeder::new(engine, 10, true);
    let mut last: Option<(u64, u32)> = None;
    feeder.set_input_log(Box::new(move |time, inputs| {
        let cmd = match last {
            Some((t, c)) if t == time => c + 1,
            _ => 0,
        };
        last = Some((time, cmd));
        let _ = tx.send(Msg::Inputs {
            time,
            cmd,
            inputs: inputs.to_vec(),
        });
    }));
    let opts = ReplayOptions {
        pacing: Pacing::Max,
        policy: ReleasePolicy::default(),
        tick_ms: 10,
        engine: EngineConfig::default(),
    };
    let mut summary = ReplaySummary::default();
    let drove = crate::replay::drive(path, &opts, &mut feeder, &mut summary);
    feeder.finish()?;
    drove.map_err(|e| std::io::Error::other(crate::error::chain(&e)))?;
    let _ = applier.join();
    Ok(rx.try_iter().collect())
}

/// Keeps only the snapshot a restore at the end of the trace would find in the worst case: a
/// restart just before the next snapshot (a whole period of tail to feed).
fn worst_case_snapshot(msgs: Vec<Msg>) -> Vec<Msg> {
    let last = msgs.iter().filter_map(Msg::time).max().unwrap_or(0);
    let limit = last.saturating_sub(SNAPSHOT_EVERY_MS - 1);
    let keep = msgs
        .iter()
        .filter_map(|m| match m {
            Msg::Snapshot { time, .. } if *time <= limit => Some(*time),
            _ => None,
        })
        .max();
    msgs.into_iter()
        .filter(|m| !matches!(m, Msg::Snapshot { time, .. } if Some(*time) != keep))
        .collect()
}

/// The logical time the messages span.
fn site_time_ms(msgs: &[Msg]) -> u64 {
    let times = msgs.iter().filter_map(Msg::time);
    let (lo, hi) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    hi.saturating_sub(lo)
}

/// The number of messages up to the first frontier past the middle of the trace's time, and the
/// checkpoint that frontier allows.
fn halfway(msgs: &[Msg]) -> (usize, u64) {
    let times = msgs.iter().filter_map(Msg::time);
    let (lo, hi) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let middle = lo.saturating_add(hi.saturating_sub(lo) / 2);
    msgs.iter()
        .position(|m| matches!(m, Msg::Frontier(f) if *f > middle))
        .map_or((msgs.len(), 0), |i| match msgs[i] {
            Msg::Frontier(f) => (i + 1, f - 1),
            _ => (i + 1, 0),
        })
}

/// The store's tables after a `VACUUM FULL` and an `ANALYZE`: their live rows, each table
/// packed to its fillfactor. Dead row versions are left out: a latest-state table at a
/// real-time pace has autovacuum reuse them, a number bounded by the update rate, not by the
/// site's age, while a writer at full speed leaves autovacuum no time.
async fn sizes(url: &str) -> Result<stats::StoreStats, StoreError> {
    let client = connect(url).await?;
    client.batch_execute("VACUUM FULL").await?;
    stats::stats(&client, &Retention::default(), true).await
}

/// What every table grew by per site hour between the two sizes (halfway, end), and the WAL the
/// writer wrote, next to the recording that produced them.
fn storage_figures(
    path: &str,
    site_ms: u64,
    (half, end): &(stats::StoreStats, stats::StoreStats),
    wal: i64,
    figures: &mut Vec<Figure>,
) {
    let span = end
        .checkpoint
        .unwrap_or(0)
        .saturating_sub(half.checkpoint.unwrap_or(0));
    let hours = (span as f64 / 3_600_000.0).max(1e-9);
    let per_hour = |bytes: i64| bytes as f64 / 1e6 / hours;
    let recording = std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6);
    let recording_h = recording / (site_ms as f64 / 3_600_000.0).max(1e-9);
    let figure = |name: String, value: f64, note: String| Figure {
        section: "store",
        name,
        value,
        unit: "MB/site-h",
        baseline: None,
        ratio: None,
        better: "lower",
        note,
    };
    for (h, e) in half.tables.iter().zip(&end.tables) {
        let note = format!(
            "{:.1} MB ({} rows) halfway, {:.1} MB ({} rows) at the end",
            h.bytes as f64 / 1e6,
            h.rows,
            e.bytes as f64 / 1e6,
            e.rows,
        );
        figures.push(match e.grows {
            true => figure(
                format!("store growth per site hour: {}", e.table),
                per_hour(e.bytes - h.bytes),
                note,
            ),
            false => Figure {
                unit: "MB",
                ..figure(
                    format!("store size, bounded by the site's size: {}", e.table),
                    e.bytes as f64 / 1e6,
                    note,
                )
            },
        });
    }
    let grown = per_hour(end.total_bytes(true) - half.total_bytes(true));
    figures.push(Figure {
        baseline: Some(super::Baseline {
            name: "the MCAP recording that produced it".into(),
            value: recording_h,
        }),
        ratio: Some(grown / recording_h.max(1e-9)),
        ..figure(
            "store growth per site hour: all tables".into(),
            grown,
            format!(
                "over the second half of the trace ({:.2} site hours), live rows; {:.1} MB in all at the end, {:.1} MB of it bounded; WAL excluded",
                hours,
                (end.total_bytes(true) + end.total_bytes(false)) as f64 / 1e6,
                end.total_bytes(false) as f64 / 1e6,
            ),
        )
    });
    figures.push(figure(
        "store WAL written per site hour".into(),
        wal as f64 / 1e6 / (site_ms as f64 / 3_600_000.0).max(1e-9),
        "the writer's transactions over the whole trace, and the two VACUUMs (fsync on, default WAL settings)".into(),
    ));
}

/// Feeds the stored input log after `after` to `engine` and waits for every output up to the
/// checkpoint; returns the inputs fed.
async fn rebuild(
    client: &tokio_postgres::Client,
    mut engine: Engine,
    after: Option<u64>,
    checkpoint: u64,
) -> Result<u64, StoreError> {
    let drain = super::engine::drain_outputs(&mut engine);
    let (inputs, _) = restore::feed_engine(client, &engine, after, checkpoint).await?;
    tokio::task::block_in_place(|| engine.finish(checkpoint)).map_err(|_| StoreError::Stopped)?;
    let _ = drain.join();
    Ok(inputs)
}

async fn fresh_database(
    admin: &tokio_postgres::Client,
    url: &str,
    name: &str,
) -> Result<String, StoreError> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = format!("{} dbname={name}", url.replace("dbname=postgres", ""));
    let mut client = connect(&url).await?;
    migrate::run(&mut client).await?;
    Ok(url)
}

/// Writer vs raw COPY, and restore times.
pub fn store_figures(
    path: &str,
    workdir: &std::path::Path,
    figures: &mut Vec<Figure>,
) -> Result<(), BenchError> {
    let pg_dir = workdir.join("bench-pg");
    let _ = std::fs::remove_dir_all(&pg_dir);
    let pg = match LocalPg::start(&pg_dir, Default::default()) {
        Ok(pg) => pg,
        Err(e) => {
            tracing::warn!("store section skipped: {}", crate::error::chain(&e));
            return Ok(());
        }
    };
    let msgs = worst_case_snapshot(capture(path)?);
    // The same append-only rows, for the raw COPY.
    let mut all = WriteSet::default();
    for m in &msgs {
        match m {
            Msg::Inputs { time, cmd, inputs } => all.add_inputs(*time, *cmd, inputs.clone()),
            Msg::Outputs { batch, seqs } => all.add_outputs(batch, seqs),
            Msg::Frontier(_) | Msg::Snapshot { .. } => {}
        }
    }
    // The baseline's rows: one per input, as the store wrote them before the blocks.
    let input_rows: Vec<(i64, i32, i32, String, String, Vec<u8>)> = (all.commands.iter())
        .flat_map(|c| {
            (c.inputs.iter().enumerate()).map(|(ord, input)| {
                let ((kind, key), _) = input;
                let value = bincode::serialize(input).unwrap_or_default();
                (
                    c.time as i64,
                    c.cmd as i32,
                    ord as i32,
                    format!("{kind:?}"),
                    key.to_string(),
                    value,
                )
            })
        })
        .collect();
    all.seal();
    let append_rows = (all.inputs + all.history.len()) as f64;
    let site_ms = site_time_ms(&msgs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let url = pg.url().to_string();
    let (writer_time, rows_written, copy_time, stats, wal) = runtime.block_on(async {
        let admin = connect(&url).await?;
        // The writer, fed from another thread as fast as the channel takes it.
        let wurl = fresh_database(&admin, &url, "bench_writer").await?;
        let client = connect(&wurl).await?;
        // Everything arrives at once here (not at the engine's pace): no memory bound, so that
        // every row is written.
        let config = WriterConfig {
            max_buffer_bytes: usize::MAX / 2,
            ..WriterConfig::new(wurl.clone())
        };
        let (handle, task) = writer::spawn(config, client, None);
        let metrics = handle.metrics.clone();
        let wal_at: String = admin
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?
            .get(0);
        // Sizes are taken halfway and at the end: what the second half adds is what the store
        // grows by per site hour (the first includes what the site's size alone costs).
        let split = halfway(&msgs);
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let start = Instant::now();
        let feeder = std::thread::spawn(move || {
            let mut msgs = msgs.into_iter();
            for m in msgs.by_ref().take(split.0) {
                if handle.send(m).is_err() {
                    return;
                }
            }
            let _ = wait.recv();
            for m in msgs {
                if handle.send(m).is_err() {
                    return;
                }
            }
            let _ = handle.send(Msg::Frontier(u64::MAX));
        });
        while metrics
            .checkpoint
            .load(std::sync::atomic::Ordering::Acquire)
            < split.1
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let paused = Instant::now();
        let half = sizes(&wurl).await?;
        let pause = paused.elapsed();
        let _ = go.send(());
        let _ = task.await;
        let writer_time = start.elapsed() - pause;
        let _ = feeder.join();
        let wal: i64 = admin
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint",
                &[&wal_at],
            )
            .await?
            .get(0);
        let stats = (half, sizes(&wurl).await?);
        let rows = metrics
            .rows_written
            .load(std::sync::atomic::Ordering::Relaxed);
        let dropped = metrics
            .dropped_rows
            .load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            tracing::error!(
                dropped,
                "the store bench dropped rows: its figure is not valid"
            );
        }
        // Raw binary COPY of the same append-only rows, one transaction.
        let curl = fresh_database(&admin, &url, "bench_copy").await?;
        let mut client = connect(&curl).await?;
        let start = Instant::now();
        let tx = client.transaction().await?;
        let days: HashSet<i64> = all
            .history
            .iter()
            .map(|r| r.0 / partitions::PARTITION_MS)
            .collect();
        for d in &days {
            partitions::create_partition(&tx, "output_history", *d).await?;
        }
        tx.batch_execute(
            "CREATE TABLE input_rows (time_ms bigint, cmd integer, ord integer, kind text, \
             key text, value bytea, PRIMARY KEY (time_ms, cmd, ord))",
        )
        .await?;
        let sink = tx
            .copy_in(
                "COPY input_rows (time_ms, cmd, ord, kind, key, value) FROM STDIN (FORMAT binary)",
            )
            .await?;
        let w = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::INT4,
                Type::INT4,
                Type::TEXT,
                Type::TEXT,
                Type::BYTEA,
            ],
        );
        pin_mut!(w);
        for (t, c, o, kind, key, value) in &input_rows {
            w.as_mut().write(&[t, c, o, kind, key, value]).await?;
        }
        w.finish().await?;
        let sink = tx
            .copy_in("COPY output_history (time_ms, room, diff, value) FROM STDIN (FORMAT binary)")
            .await?;
        let w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT, Type::INT4, Type::TEXT]);
        pin_mut!(w);
        for (t, room, d, v) in &all.history {
            w.as_mut().write(&[t, room, d, &v.as_str()]).await?;
        }
        w.finish().await?;
        tx.commit().await?;
        let copy_time = start.elapsed();
        Ok::<_, StoreError>((writer_time, rows, copy_time, stats, wal))
    })?;
    figures.push(rate(
        "store writer, append-only rows",
        "store",
        append_rows,
        writer_time,
        "rows/s",
        Some(("raw binary COPY of the same data, a row per input", append_rows, copy_time)),
        &format!(
            "{} inputs (the writer: {} plain input-log blocks, packed by the minute; the COPY: a row per input, as the store kept them before) + {} output rows; {} rows written in all (with latest-state upserts)",
            all.inputs,
            all.blocks.len(),
            all.history.len(),
            rows_written
        ),
    ));
    storage_figures(path, site_ms, &stats, wal, figures);
    // Restore: sticky values, then the dataflow state (from the snapshot + tail, and from the
    // whole input log as the baseline).
    let wurl = format!("{} dbname=bench_writer", url.replace("dbname=postgres", ""));
    let (seed, rooms, snapshot, whole) = runtime.block_on(async {
        let client = connect(&wurl).await?;
        let checkpoint = crate::store::checkpoint(&client).await?.unwrap_or(0);
        let hub = Arc::new(Hub::new());
        let start = Instant::now();
        let (rooms, _) = restore::seed_hub(&client, &hub).await?;
        let seed = start.elapsed();
        let start = Instant::now();
        let snapshot = match restore::load_snapshot(&client, checkpoint).await? {
            Some(s) => {
                let time = s.time;
                let bytes = s.bytes();
                let engine = Engine::start_restored(EngineConfig::default(), s)
                    .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
                let loaded = start.elapsed();
                let inputs = rebuild(&client, engine, Some(time), checkpoint).await?;
                Some((start.elapsed(), loaded, bytes, inputs, checkpoint - time))
            }
            None => None,
        };
        let start = Instant::now();
        let engine = Engine::start(EngineConfig::default()).map_err(|_| StoreError::Stopped)?;
        let inputs = rebuild(&client, engine, None, checkpoint).await?;
        Ok::<_, StoreError>((seed, rooms, snapshot, (start.elapsed(), inputs)))
    })?;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    figures.push(Figure {
        section: "store",
        name: "restore: stored sticky values served".into(),
        value: ms(seed),
        unit: "ms",
        baseline: None,
        ratio: None,
        better: "lower",
        note: format!("{rooms} rooms"),
    });
    let (whole_time, whole_inputs) = whole;
    match snapshot {
        Some((d, loaded, bytes, inputs, tail_ms)) => figures.push(Figure {
            section: "store",
            name: "restore: dataflow rebuilt from the snapshot + tail".into(),
            value: ms(d),
            unit: "ms",
            baseline: Some(super::Baseline {
                name: "the whole input log".into(),
                value: ms(whole_time),
            }),
            ratio: Some(ms(d) / ms(whole_time).max(1e-9)),
            better: "lower",
            note: format!(
                "snapshot of {:.1} MB read and loaded in {:.0} ms, {:.0} s before the checkpoint (worst case: a restart just before the next snapshot), {inputs} inputs after it; the whole log: {whole_inputs} inputs",
                bytes as f64 / 1e6,
                ms(loaded),
                tail_ms as f64 / 1e3
            ),
        }),
        None => figures.push(Figure {
            section: "store",
            name: "restore: dataflow rebuilt from the input log".into(),
            value: ms(whole_time),
            unit: "ms",
            baseline: None,
            ratio: None,
            better: "lower",
            note: format!("{whole_inputs} inputs (no snapshot: the trace is shorter than its period)"),
        }),
    }
    drop(pg);
    let _ = std::fs::remove_dir_all(&pg_dir);
    Ok(())
}
