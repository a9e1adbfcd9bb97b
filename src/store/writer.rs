//! The batched writer: takes the engine's inputs and complete-time batches ([`Msg`]) through a
//! bounded channel, and writes them on one dedicated connection, every `flush_ms` or
//! `flush_rows` rows, whichever first: binary COPY for the append-only tables (input log, output
//! history), one multi-row upsert per latest-state table (the last value per key only), the
//! checkpoint, all in one transaction. A set holds whole logical times and at most about
//! `flush_rows` rows (a writer that is behind, after an outage or under a replay at full speed,
//! writes several bounded transactions rather than one huge one), and the next set is encoded on
//! the writer's task while the previous one is written on a task of its own.
//!
//! - Only times the engine has completed (below its output frontier) are written, so the store
//!   always holds an exact prefix of the run, whose end is the checkpoint.
//! - Database outage: the failed transaction is retried with backoff (100 ms doubling to 5 s) on
//!   a new connection; messages keep arriving in memory meanwhile (the hot path never waits).
//!   The outage shows on `/health` (503, `"store": {"status": "unreachable"}`) and `/metrics`.
//!   A retry first reads the checkpoint, so a commit whose answer was lost is not written twice.
//! - Memory bound (`max_buffer_bytes`): when the buffered messages exceed it, the oldest are
//!   dropped until 90 % of the bound, logged as an error, counted
//!   (`rmf_dash_store_dropped_rows_total`) and recorded in `store_gaps` with their time range when
//!   writing resumes. Nothing is dropped silently and memory stays bounded.
//! - Leadership ([`super::leader`]): with a [`Fence`], every transaction first checks that the
//!   process's term is still the store's latest (a stale writer gets [`StoreError::Fenced`] and
//!   stops; the process is deposed), and nothing is written while the process is not active
//!   (its lock connection was lost): the writer only probes its connection then (an outage
//!   still shows), keeping the rows for when it is active again. The writer never reconnects
//!   on its own authority: the term does.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::pin_mut;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use rmf_dash_dataflows::prelude::Time;

use super::input_log::{self, PACK_MS};
use super::leader::{Fence, LeaderConfig};
use super::partitions;
use super::rows::{Msg, WriteSet};
use super::{StoreError, connect};
use crate::error::chain;

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub url: String,
    /// Flush at least this often (ms).
    pub flush_ms: u64,
    /// Flush as soon as this many rows are buffered.
    pub flush_rows: usize,
    /// Bound of the memory buffered while the database is slow or away.
    pub max_buffer_bytes: usize,
    /// Messages the channel from the engine holds.
    pub channel: usize,
    /// How `serve` and `replay` seek the leadership of the site before writing.
    pub leader: LeaderConfig,
    /// The term this writer writes as (set once the leadership is held); `None`: unchecked
    /// (benchmarks).
    pub fence: Option<Fence>,
}

impl WriterConfig {
    pub fn new(url: String) -> Self {
        WriterConfig {
            url,
            flush_ms: 200,
            flush_rows: 50_000,
            max_buffer_bytes: 256 << 20,
            channel: 4096,
            leader: LeaderConfig::default(),
            fence: None,
        }
    }
}

/// Counters and state of the writer (`/health`, `/metrics`).
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// The last write (or connection attempt) succeeded.
    pub up: AtomicBool,
    /// Logical time everything is written up to.
    pub checkpoint: AtomicU64,
    pub rows_written: AtomicU64,
    pub transactions: AtomicU64,
    /// Sum and last of the transaction durations (µs).
    pub tx_micros_total: AtomicU64,
    pub tx_micros_last: AtomicU64,
    pub buffered_bytes: AtomicU64,
    pub buffered_rows: AtomicU64,
    /// Rows dropped by the memory bound.
    pub dropped_rows: AtomicU64,
    pub failures: AtomicU64,
    /// Sends that found the channel full and waited.
    pub channel_waits: AtomicU64,
    /// Reads that waited for the writer longer than their bound and answered from what was
    /// stored ([`StoreMetrics::stored_up_to`]).
    pub stale_reads: AtomicU64,
    /// Woken whenever the checkpoint advances.
    advanced: tokio::sync::Notify,
    /// A reader waits for the next write: flush now rather than at the next tick.
    flush_wanted: tokio::sync::Notify,
}

impl StoreMetrics {
    /// Waits until everything up to logical time `time` is stored, asking the writer to write
    /// what it has now, at most `limit`; whether it is. Reads of the store call it with the time
    /// of the latest change any client may have seen, so that no route answers less than a room
    /// has shown (DESIGN.md invariant 9: read your writes across interfaces). A read that waits
    /// in vain is counted.
    pub async fn stored_up_to(&self, time: Time, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let advanced = self.advanced.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            if self.checkpoint.load(Ordering::Acquire) >= time {
                return true;
            }
            self.flush_wanted.notify_one();
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                let done = self.checkpoint.load(Ordering::Acquire) >= time;
                if !done {
                    self.stale_reads.fetch_add(1, Ordering::Relaxed);
                }
                return done;
            }
        }
    }
}

/// Where the engine side sends to the writer. Cloned into the feeder and the output applier.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
    pub metrics: Arc<StoreMetrics>,
}

impl StoreHandle {
    /// Sends from a (non-async) thread. The writer drains the channel while it writes, so a full
    /// channel means a starved writer task: the send then waits (counted) rather than lose data.
    pub fn send(&self, msg: Msg) -> Result<(), StoreError> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(msg)) => {
                self.metrics.channel_waits.fetch_add(1, Ordering::Relaxed);
                self.tx.blocking_send(msg).map_err(|_| StoreError::Stopped)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Stopped),
        }
    }
}

/// One connection and the partitions known to exist.
struct Conn {
    client: tokio_postgres::Client,
    partitions: HashSet<(&'static str, i64)>,
}

/// Starts the writer task. `checkpoint` is the stored checkpoint (nothing at or before it is
/// written again). The task ends once every handle is dropped and the completed rest is written.
pub fn spawn(
    config: WriterConfig,
    client: tokio_postgres::Client,
    checkpoint: Option<Time>,
) -> (StoreHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.channel.max(1));
    let metrics = Arc::new(StoreMetrics::default());
    metrics.up.store(true, Ordering::Relaxed);
    metrics
        .checkpoint
        .store(checkpoint.unwrap_or(0), Ordering::Relaxed);
    let conn = Conn {
        client,
        partitions: HashSet::new(),
    };
    let task = tokio::spawn(run(config, rx, metrics.clone(), conn, checkpoint));
    (StoreHandle { tx, metrics }, task)
}

/// What a flight did.
enum Flown {
    Written,
    /// Not active: nothing written (the connection answered).
    Held,
}

/// A set being written, on a task of its own (so that the next set is built meanwhile).
type Flight = tokio::task::JoinHandle<(Option<Conn>, WriteSet, Result<Flown, StoreError>)>;

struct Buffer {
    msgs: VecDeque<Msg>,
    bytes: usize,
    rows: usize,
}

impl Buffer {
    fn push(&mut self, m: Msg) {
        self.bytes += m.bytes();
        self.rows += m.rows();
        self.msgs.push_back(m);
    }

    /// Takes, in order, the messages of the earliest whole times before `frontier`, stopping at
    /// the first time that would go past `max_rows` rows (at least one time is taken). Returns
    /// them and the bound: every message of a time before it is taken.
    fn take_before(&mut self, frontier: Time, max_rows: usize) -> (Vec<Msg>, Time) {
        let mut per_time: BTreeMap<Time, usize> = BTreeMap::new();
        for m in &self.msgs {
            if let Some(t) = m.time().filter(|t| *t < frontier) {
                *per_time.entry(t).or_default() += m.rows();
            }
        }
        let mut bound = frontier;
        let mut rows = 0;
        for (t, r) in per_time {
            if rows > 0 && rows + r > max_rows {
                bound = t;
                break;
            }
            rows += r;
        }
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.msgs.len());
        for m in self.msgs.drain(..) {
            if m.time().is_some_and(|t| t < bound) {
                self.bytes -= m.bytes();
                self.rows -= m.rows();
                taken.push(m);
            } else {
                kept.push_back(m);
            }
        }
        self.msgs = kept;
        (taken, bound)
    }
}

async fn run(
    config: WriterConfig,
    mut rx: mpsc::Receiver<Msg>,
    metrics: Arc<StoreMetrics>,
    conn: Conn,
    stored: Option<Time>,
) {
    let mut buffer = Buffer {
        msgs: VecDeque::new(),
        bytes: 0,
        rows: 0,
    };
    let mut written: Option<Time> = stored;
    let mut frontier: Time = stored.map_or(0, |c| c + 1);
    // The latest time of any message (the checkpoint once the engine has ended).
    let mut max_seen: Option<Time> = None;
    let mut conn = Some(conn);
    let mut inflight: Option<Flight> = None;
    let mut inflight_bytes = 0usize;
    // The set built while `inflight` is written, and the checkpoint of the latest set built.
    let mut next: Option<WriteSet> = None;
    let mut planned: Option<Time> = None;
    // A set that failed, and when to try it again.
    let mut retry: Option<(WriteSet, Instant)> = None;
    let mut backoff = Duration::from_millis(100);
    let mut gaps: Vec<(i64, i64, i64)> = Vec::new();
    let mut closed_at: Option<Instant> = None;
    let mut last_flush = Instant::now();
    // A reader waits for the next write (see `StoreMetrics::stored_up_to`).
    let mut hurry = false;
    let mut tick = tokio::time::interval(Duration::from_millis(config.flush_ms.clamp(1, 60_000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv(), if closed_at.is_none() => match msg {
                Some(Msg::Frontier(f)) => frontier = frontier.max(f),
                Some(m) => {
                    if m.time().is_some_and(|t| written.is_some_and(|w| t <= w)) {
                        continue;
                    }
                    max_seen = max_seen.max(m.time());
                    buffer.push(m);
                    let held = held(inflight_bytes, &next);
                    if buffer.bytes + held > config.max_buffer_bytes {
                        shed(&mut buffer, config.max_buffer_bytes, held, &metrics, &mut gaps);
                    }
                }
                None => closed_at = Some(Instant::now()),
            },
            result = async { inflight.as_mut().expect("guarded by the precondition").await }, if inflight.is_some() => {
                inflight = None;
                inflight_bytes = 0;
                let (c, set, r) = match result {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(rows = buffer.rows, "store write task failed ({e}): nothing more is written");
                        break;
                    }
                };
                conn = c;
                match r {
                    Ok(Flown::Held) => {
                        retry = Some((set, Instant::now() + Duration::from_millis(100)));
                    }
                    Err(StoreError::Fenced { term, current }) => {
                        let why = format!(
                            "the store's term is {current}, this process's {term}: another main process is active"
                        );
                        tracing::error!(rows = buffer.rows + set.len(), "store writer fenced off ({why}): nothing more is written");
                        if let Some(f) = &config.fence {
                            f.leadership.depose(why);
                        }
                        break;
                    }
                    Ok(Flown::Written) => {
                        if !metrics.up.swap(true, Ordering::Relaxed) {
                            tracing::info!(checkpoint = set.checkpoint, "store reachable again; writing resumed");
                        }
                        written = Some(set.checkpoint);
                        metrics.checkpoint.store(set.checkpoint, Ordering::Release);
                        metrics.advanced.notify_waiters();
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        metrics.failures.fetch_add(1, Ordering::Relaxed);
                        if metrics.up.swap(false, Ordering::Relaxed) {
                            tracing::error!(error = %chain(&e), "store unreachable: buffering in memory and retrying");
                        } else {
                            tracing::debug!(error = %chain(&e), "store write retry failed");
                        }
                        retry = Some((set, Instant::now() + backoff));
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            },
            _ = tick.tick() => {}
            _ = metrics.flush_wanted.notified() => hurry = true,
        }
        metrics.buffered_bytes.store(
            (buffer.bytes + held(inflight_bytes, &next)) as u64,
            Ordering::Relaxed,
        );
        metrics
            .buffered_rows
            .store(buffer.rows as u64, Ordering::Relaxed);
        let due = hurry
            || last_flush.elapsed() >= Duration::from_millis(config.flush_ms)
            || buffer.rows >= config.flush_rows
            || closed_at.is_some();
        // The next set is built while the previous one is written (the rows' encoding then
        // overlaps with PostgreSQL's work), at most one ahead; a set to retry goes first.
        if next.is_none() && retry.is_none() && due {
            let checkpoint = target(frontier, max_seen);
            let ahead = planned.max(written);
            if frontier > 0 && checkpoint.is_some_and(|c| ahead.is_none_or(|p| p < c)) {
                last_flush = Instant::now();
                hurry = false;
                // Bounded sets: encoding one overlaps with writing the one before.
                let (msgs, bound) = buffer.take_before(frontier, config.flush_rows);
                let checkpoint = if bound < frontier {
                    Some(bound - 1)
                } else {
                    checkpoint
                };
                let mut set = WriteSet {
                    checkpoint: checkpoint.unwrap_or(0),
                    gaps: std::mem::take(&mut gaps),
                    ..WriteSet::default()
                };
                for m in msgs {
                    match m {
                        Msg::Inputs { time, cmd, inputs } => set.add_inputs(time, cmd, inputs),
                        Msg::Outputs { batch, seqs } => set.add_outputs(&batch, &seqs),
                        Msg::Snapshot {
                            time,
                            fingerprint,
                            data,
                        } => {
                            set.snapshot = Some((time as i64, fingerprint, data));
                        }
                        Msg::Frontier(_) => {}
                    }
                }
                set.seal();
                planned = Some(set.checkpoint);
                next = Some(set);
            }
        }
        if inflight.is_none() {
            let set = match retry.take() {
                Some((set, at)) if Instant::now() >= at => Some(set),
                Some(r) => {
                    retry = Some(r);
                    None
                }
                None => next.take(),
            };
            if let Some(set) = set {
                inflight_bytes = set.held_bytes();
                let url = config.url.clone();
                let metrics = metrics.clone();
                let c = conn.take();
                let retrying = !metrics.up.load(Ordering::Relaxed);
                let fence = config.fence.clone();
                inflight = Some(tokio::spawn(async move {
                    let mut c = match c {
                        Some(c) if !c.client.is_closed() => c,
                        _ => match connect(&url).await {
                            Ok(client) => Conn {
                                client,
                                partitions: HashSet::new(),
                            },
                            Err(e) => return (None, set, Err(e)),
                        },
                    };
                    if let Some(f) = &fence
                        && !f.leadership.is_active()
                    {
                        // Not holding the lock: nothing is written, the connection is probed.
                        return match c.client.simple_query("SELECT 1").await {
                            Ok(_) => (Some(c), set, Ok(Flown::Held)),
                            Err(e) => (None, set, Err(e.into())),
                        };
                    }
                    let start = Instant::now();
                    let term = fence.as_ref().map(|f| f.term);
                    let r = write_set(&mut c.client, &mut c.partitions, &set, retrying, term)
                        .await
                        .map(|()| Flown::Written);
                    if r.is_ok() {
                        let us = start.elapsed().as_micros() as u64;
                        metrics.tx_micros_total.fetch_add(us, Ordering::Relaxed);
                        metrics.tx_micros_last.store(us, Ordering::Relaxed);
                        metrics.transactions.fetch_add(1, Ordering::Relaxed);
                        metrics
                            .rows_written
                            .fetch_add(set.len() as u64, Ordering::Relaxed);
                    }
                    (Some(c), set, r)
                }));
            }
        }
        if let Some(at) = closed_at
            && inflight.is_none()
        {
            // (A set built ahead is still here only behind a set waiting to be retried.)
            let done = next.is_none()
                && target(frontier, max_seen).is_none_or(|c| written.is_some_and(|w| w >= c));
            if retry.is_none() && done {
                break;
            }
            if at.elapsed() > Duration::from_secs(10) {
                tracing::error!(
                    rows = buffer.rows,
                    "store still unreachable 10 s after the end: these rows are not written"
                );
                break;
            }
        }
    }
    metrics.buffered_bytes.store(0, Ordering::Relaxed);
    tracing::info!(
        checkpoint = written.unwrap_or(0),
        rows = metrics.rows_written.load(Ordering::Relaxed),
        "store writer stopped"
    );
}

/// The checkpoint the buffered messages allow: the frontier's previous time, or the latest time
/// seen once the engine has ended (frontier `Time::MAX`). `None`: nothing to write.
fn target(frontier: Time, max_seen: Option<Time>) -> Option<Time> {
    if frontier == Time::MAX {
        max_seen
    } else {
        frontier.checked_sub(1)
    }
}

/// Memory held by the set being written (`inflight_bytes`) and the one built ahead.
fn held(inflight_bytes: usize, next: &Option<WriteSet>) -> usize {
    inflight_bytes + next.as_ref().map_or(0, WriteSet::held_bytes)
}

/// The memory bound's policy: drop the oldest buffered messages down to 90 % of the bound, the
/// sets being written or built ahead (`held`) counted.
fn shed(
    buffer: &mut Buffer,
    bound: usize,
    held: usize,
    metrics: &StoreMetrics,
    gaps: &mut Vec<(i64, i64, i64)>,
) {
    let target = (bound / 10 * 9).saturating_sub(held);
    let (mut from, mut to, mut rows) = (i64::MAX, i64::MIN, 0i64);
    while buffer.bytes > target {
        let Some(m) = buffer.msgs.pop_front() else {
            break;
        };
        buffer.bytes -= m.bytes();
        buffer.rows -= m.rows();
        if let Some(t) = m.time() {
            from = from.min(t as i64);
            to = to.max(t as i64);
        }
        rows += m.rows() as i64;
    }
    if rows > 0 {
        metrics
            .dropped_rows
            .fetch_add(rows as u64, Ordering::Relaxed);
        tracing::error!(
            rows,
            from_ms = from,
            to_ms = to,
            bound_bytes = bound,
            "store buffer over its memory bound: the oldest rows are dropped (recorded in store_gaps)"
        );
        gaps.push((from, to, rows));
    }
}

const COPY_INPUTS: &str =
    "COPY input_recent (first_ms, first_cmd, last_ms, inputs, data) FROM STDIN (FORMAT binary)";
const COPY_HISTORY: &str =
    "COPY output_history (time_ms, room, diff, value) FROM STDIN (FORMAT binary)";
const UPSERT_ROOMS: &str = "INSERT INTO room_state (room, seq, time_ms, value, task_id)
    SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[])
    ON CONFLICT (room) DO UPDATE SET seq = excluded.seq, time_ms = excluded.time_ms,
        value = excluded.value, task_id = excluded.task_id";
const UPSERT_TASKS: &str = "INSERT INTO task_state (task_id, category, status, requester,
        assigned_fleet, assigned_robot, request_time_ms, start_time_ms, finish_time_ms, labels,
        time_ms, state)
    SELECT id, c, s, rq, f, r, rt, st, ft, ARRAY(SELECT jsonb_array_elements_text(l::jsonb)), t, j
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::int8[], $12::text[])
        AS u(id, c, s, rq, f, r, rt, st, ft, l, t, j)
    ON CONFLICT (task_id) DO UPDATE SET category = excluded.category, status = excluded.status,
        requester = excluded.requester, assigned_fleet = excluded.assigned_fleet,
        assigned_robot = excluded.assigned_robot, request_time_ms = excluded.request_time_ms,
        start_time_ms = excluded.start_time_ms, finish_time_ms = excluded.finish_time_ms,
        labels = excluded.labels, time_ms = excluded.time_ms, state = excluded.state";
const INSERT_LOGS: &str = "INSERT INTO {table} ({key}, {stream}, seq, tier, unix_millis_time, text, time_ms)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::int8[])
    ON CONFLICT DO NOTHING";
const UPSERT_ALERTS: &str = "INSERT INTO alerts (id, task_id, time_ms, request)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[])
    ON CONFLICT (id) DO UPDATE SET task_id = excluded.task_id, time_ms = excluded.time_ms,
        request = excluded.request";
const UPSERT_RESPONSES: &str = "INSERT INTO alerts (id, time_ms, response, response_time_ms)
    SELECT i, t, r, t FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(i, r, t)
    ON CONFLICT (id) DO UPDATE SET response = excluded.response,
        response_time_ms = excluded.response_time_ms";

/// Writes one set in one transaction; `known` caches the partitions that exist. With a `term`,
/// the transaction first checks that it is still the store's latest ([`super::leader`]) and
/// records the write in its `leader_terms` row. `check` reads the checkpoint (a retry whose
/// previous commit may have succeeded is then done).
pub async fn write_set(
    client: &mut tokio_postgres::Client,
    known: &mut HashSet<(&'static str, i64)>,
    set: &WriteSet,
    check: bool,
    term: Option<i64>,
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    if let Some(term) = term {
        super::leader::check_term(&tx, term).await?;
    }
    if check {
        let stored: Option<i64> = tx
            .query_opt("SELECT time_ms FROM checkpoint WHERE id = 1", &[])
            .await?
            .map(|r| r.get(0));
        if stored.is_some_and(|c| c >= set.checkpoint as i64) {
            tx.commit().await?;
            return Ok(());
        }
    }
    let mut created = Vec::new();
    partitions::ensure(
        &tx,
        known,
        "output_history",
        set.history.iter().map(|r| r.0),
        &mut created,
    )
    .await?;
    if !set.blocks.is_empty() {
        let sink = tx.copy_in(COPY_INPUTS).await?;
        let types = [Type::INT8, Type::INT4, Type::INT8, Type::INT4, Type::BYTEA];
        let w = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(w);
        for b in &set.blocks {
            w.as_mut()
                .write(&[&b.first_ms, &b.first_cmd, &b.last_ms, &b.inputs, &b.data])
                .await?;
        }
        w.finish().await?;
    }
    // The plain blocks of every minute complete at this checkpoint become one packed block each
    // (a look into the index of plain blocks when there are none).
    let end = (set.checkpoint as i64 + 1).div_euclid(PACK_MS) * PACK_MS;
    input_log::pack(&tx, end, known, &mut created).await?;
    if !set.history.is_empty() {
        let sink = tx.copy_in(COPY_HISTORY).await?;
        let w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT, Type::INT4, Type::TEXT]);
        pin_mut!(w);
        for (t, room, d, v) in &set.history {
            w.as_mut().write(&[t, room, d, &v.as_str()]).await?;
        }
        w.finish().await?;
    }
    if !set.rooms.is_empty() {
        let rooms: Vec<&str> = set.rooms.keys().map(|k| &**k).collect();
        let seqs: Vec<i64> = set.rooms.values().map(|v| v.0).collect();
        let times: Vec<i64> = set.rooms.values().map(|v| v.1).collect();
        // A task-state room's value is its task's state: kept once, in task_state.
        let tasks: Vec<Option<&str>> = set
            .rooms
            .keys()
            .map(|r| set.room_tasks.get(r).map(String::as_str))
            .collect();
        let values: Vec<Option<&str>> = (set.rooms.values().zip(&tasks))
            .map(|(v, task)| v.2.as_ref().filter(|_| task.is_none()).map(|p| p.as_str()))
            .collect();
        tx.execute(UPSERT_ROOMS, &[&rooms, &seqs, &times, &values, &tasks])
            .await?;
    }
    if !set.tasks.is_empty() {
        let t = &set.tasks;
        let ids: Vec<&str> = t.keys().map(String::as_str).collect();
        let col = |f: fn(&super::rows::TaskRow) -> Option<&str>| -> Vec<Option<&str>> {
            t.values().map(f).collect()
        };
        let num = |f: fn(&super::rows::TaskRow) -> Option<i64>| -> Vec<Option<i64>> {
            t.values().map(f).collect()
        };
        let labels: Vec<String> = t
            .values()
            .map(|r| serde_json::to_string(&r.labels).unwrap_or_else(|_| "[]".into()))
            .collect();
        let times: Vec<i64> = t.values().map(|r| r.time).collect();
        let states: Vec<&str> = t.values().map(|r| r.state.as_str()).collect();
        tx.execute(
            UPSERT_TASKS,
            &[
                &ids,
                &col(|r| r.category.as_deref()),
                &col(|r| r.status.as_deref()),
                &col(|r| r.requester.as_deref()),
                &col(|r| r.fleet.as_deref()),
                &col(|r| r.robot.as_deref()),
                &num(|r| r.request_ms),
                &num(|r| r.start_ms),
                &num(|r| r.finish_ms),
                &labels,
                &times,
                &states,
            ],
        )
        .await?;
    }
    for (table, key, stream, logs) in [
        ("task_log", "task_id", "stream", &set.task_logs),
        ("fleet_log", "fleet", "robot", &set.fleet_logs),
    ] {
        if logs.is_empty() {
            continue;
        }
        let sql = INSERT_LOGS
            .replace("{table}", table)
            .replace("{key}", key)
            .replace("{stream}", stream);
        let keys: Vec<&str> = logs.keys().map(|k| k.0.as_str()).collect();
        let streams: Vec<&str> = logs.keys().map(|k| k.1.as_str()).collect();
        let seqs: Vec<i64> = logs.keys().map(|k| k.2).collect();
        let tiers: Vec<Option<&str>> = logs.values().map(|r| r.tier.as_deref()).collect();
        let unix: Vec<Option<i64>> = logs.values().map(|r| r.unix_ms).collect();
        let texts: Vec<Option<&str>> = logs.values().map(|r| r.text.as_deref()).collect();
        let times: Vec<i64> = logs.values().map(|r| r.time).collect();
        tx.execute(
            sql.as_str(),
            &[&keys, &streams, &seqs, &tiers, &unix, &texts, &times],
        )
        .await?;
    }
    if !set.alerts.is_empty() {
        let ids: Vec<&str> = set.alerts.keys().map(String::as_str).collect();
        let tasks: Vec<Option<&str>> = set.alerts.values().map(|a| a.task_id.as_deref()).collect();
        let times: Vec<i64> = set.alerts.values().map(|a| a.time).collect();
        let requests: Vec<&str> = set.alerts.values().map(|a| a.request.as_str()).collect();
        tx.execute(UPSERT_ALERTS, &[&ids, &tasks, &times, &requests])
            .await?;
    }
    if !set.responses.is_empty() {
        let ids: Vec<&str> = set.responses.keys().map(String::as_str).collect();
        let responses: Vec<&str> = set.responses.values().map(|r| r.0.as_str()).collect();
        let times: Vec<i64> = set.responses.values().map(|r| r.1).collect();
        tx.execute(UPSERT_RESPONSES, &[&ids, &responses, &times])
            .await?;
    }
    if let Some((time, fingerprint, data)) = &set.snapshot {
        // The latest snapshot only: a restore needs the latest at or before the checkpoint,
        // and this set's checkpoint is at or after its time.
        tx.execute(
            "INSERT INTO dataflow_snapshot (time_ms, fingerprint, data) VALUES ($1, $2, $3)
             ON CONFLICT (time_ms) DO UPDATE SET fingerprint = excluded.fingerprint,
                 data = excluded.data, written_at = now()",
            &[time, fingerprint, data],
        )
        .await?;
        tx.execute("DELETE FROM dataflow_snapshot WHERE time_ms < $1", &[time])
            .await?;
    }
    for (from, to, rows) in &set.gaps {
        tx.execute(
            "INSERT INTO store_gaps (from_ms, to_ms, rows) VALUES ($1, $2, $3)",
            &[from, to, rows],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO checkpoint (id, time_ms) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET time_ms = excluded.time_ms, updated_at = now()",
        &[&(set.checkpoint as i64)],
    )
    .await?;
    if let Some(term) = term {
        super::leader::record_write(&tx, term, set.checkpoint).await?;
    }
    tx.commit().await?;
    known.extend(created);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(time: Time) -> Msg {
        Msg::Snapshot {
            time,
            fingerprint: String::new(),
            data: Vec::new(),
        }
    }

    fn times(msgs: &[Msg]) -> Vec<Time> {
        msgs.iter().filter_map(Msg::time).collect()
    }

    #[test]
    fn a_set_takes_whole_times_up_to_its_row_bound() {
        let mut b = Buffer {
            msgs: VecDeque::new(),
            bytes: 0,
            rows: 0,
        };
        // Arrival order is not time order: a time's messages may come after later ones.
        for t in [1, 2, 1, 3, 2, 5, 4] {
            b.push(snapshot(t));
        }
        // Two rows at most: time 1 (two rows), then time 2 would go past the bound.
        let (taken, bound) = b.take_before(5, 2);
        assert_eq!((times(&taken), bound), (vec![1, 1], 2));
        // One time is taken even when it alone is past the bound.
        let (taken, bound) = b.take_before(5, 1);
        assert_eq!((times(&taken), bound), (vec![2, 2], 3));
        // Without a bound in reach: every time before the frontier.
        let (taken, bound) = b.take_before(5, 100);
        assert_eq!((times(&taken), bound), (vec![3, 4], 5));
        assert_eq!(
            (times(&b.msgs.drain(..).collect::<Vec<_>>()), b.rows),
            (vec![5], 1)
        );
    }
}
