//! `/health` (liveness and readiness), `/metrics` (Prometheus text), `/time` (`/user` and
//! `/permissions` are in `crate::users::routes`).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use crate::ingest::feed::Source;
use crate::metrics::{Kind, Metrics};

/// Readiness: the engine runs (and, with a database, the store is reachable). 503 otherwise.
pub async fn health(State(app): State<AppState>) -> impl IntoResponse {
    let engine = app.engine_running.load(Ordering::Relaxed);
    let fed = app.feed_metrics.time.load(Ordering::Relaxed);
    let delivered = app.delivered.load(Ordering::Relaxed);
    let store_up = app
        .store
        .as_ref()
        .is_none_or(|s| s.up.load(Ordering::Relaxed));
    let active = app.leader.is_active();
    let ok = engine && store_up && active;
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "role": app.leader.role().as_str(),
        "leader": {
            "site": app.leader.site(),
            "term": app.leader.term(),
            "writer": app.leader.writer(),
            "reason": app.leader.reason(),
        },
        "engine": {
            "running": engine,
            "input_time_ms": fed,
            "output_frontier_ms": delivered,
            "lag_ms": fed.saturating_sub(delivered),
            "panics": app.quarantine.metrics.panics.load(Ordering::Relaxed),
            // Inputs that made a worker panic, skipped from then on: how many, and the latest
            // described (never its payload).
            "quarantined": app.quarantine.len(),
            "last_quarantined": app.quarantine.last(),
        },
        "store": match &app.store {
            None => json!("disabled"),
            Some(s) => json!({
                "status": if store_up { "ok" } else { "unreachable" },
                "checkpoint_ms": s.checkpoint.load(Ordering::Relaxed),
                "buffered_bytes": s.buffered_bytes.load(Ordering::Relaxed),
                "dropped_rows": s.dropped_rows.load(Ordering::Relaxed),
            }),
        },
        "uptime_s": app.started.elapsed().as_secs(),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text format: the families of every part of the main process.
pub async fn metrics(State(app): State<AppState>) -> Metrics {
    let mut m = Metrics::new();
    ingest(&mut m, &app);
    app.sockets.write_metrics(&mut m);
    rooms(&mut m, &app);
    engine(&mut m, &app);
    leader(&mut m, &app);
    if let Some(s) = &app.store {
        store(&mut m, s);
    }
    if let Some(h) = &app.history {
        m.counter(
            "rmf_dash_store_read_failures_total",
            "History reads the store could not answer (answered from memory instead).",
            h.errors.load(Ordering::Relaxed),
        );
    }
    app.http.write_metrics(&mut m);
    crate::metrics::write_json_refused(&mut m);
    m
}

/// What came in: records by source, the feeder, `/_internal`, the names taken in.
fn ingest(m: &mut Metrics, app: &AppState) {
    let per_source = |of: &[std::sync::atomic::AtomicU64; 3]| {
        Source::ALL.map(|s| (s.as_str(), of[s as usize].load(Ordering::Relaxed)))
    };
    let f = &app.feed_metrics;
    m.by(
        "rmf_dash_ingest_records_total",
        "Records received, by source.",
        Kind::Counter,
        "source",
        per_source(&f.records),
    );
    m.by(
        "rmf_dash_ingest_invalid_total",
        "Records that gave no input (invalid), by source.",
        Kind::Counter,
        "source",
        per_source(&f.invalid),
    );
    let fed = f.time.load(Ordering::Relaxed);
    let delivered = app.delivered.load(Ordering::Relaxed);
    m.gauge(
        "rmf_dash_engine_frontier_lag_ms",
        "Logical time fed minus the engine's output frontier.",
        fed.saturating_sub(delivered),
    );
    m.gauge(
        "rmf_dash_feed_backlog",
        "Records waiting for the feeder.",
        app.feed.backlog() as u64,
    );
    let internal = &app.internal.metrics;
    m.family(
        "rmf_dash_internal_frames_total",
        "Frames received on /_internal, by result (each frame counted once).",
        Kind::Counter,
        internal.by_result(),
    );
    m.family(
        "rmf_dash_internal_refused_total",
        "/_internal connections refused before the upgrade, by reason (no credential, or one that is neither the internal token nor a valid client JWT).",
        Kind::Counter,
        internal.refused(),
    );
    m.gauge(
        "rmf_dash_internal_connections",
        "Connected /_internal clients (fleet adapters, task dispatcher).",
        internal.connections.load(Ordering::Relaxed),
    );
    f.names.write_metrics(m);
}

/// The rooms of ended entities (retired, revived, archived) and the changes applied.
fn rooms(m: &mut Metrics, app: &AppState) {
    let h = &app.hub.metrics;
    m.counter(
        "rmf_dash_rooms_retired_total",
        "Rooms retired: their entity ended and left the engine (--ended-task-retention).",
        h.retired.load(Ordering::Relaxed),
    );
    m.counter(
        "rmf_dash_rooms_revived_total",
        "Retired rooms taken back from the archive or the store for a subscriber or a read.",
        h.revived.load(Ordering::Relaxed),
    );
    m.gauge(
        "rmf_dash_rooms_archived",
        "Final values of retired rooms held in memory (--archived-rooms).",
        app.hub.archived() as u64,
    );
    m.counter(
        "rmf_dash_output_changes_total",
        "Output changes applied by the hub.",
        h.changes.load(Ordering::Relaxed),
    );
}

/// The engine's panics and quarantine, and what its operators hold.
fn engine(m: &mut Metrics, app: &AppState) {
    let q = &app.quarantine;
    m.counter(
        "rmf_dash_engine_panics_total",
        "Engine worker panics (each rebuilt the engine in place without the input that caused it).",
        q.metrics.panics.load(Ordering::Relaxed),
    );
    m.counter(
        "rmf_dash_quarantined_inputs_total",
        "Inputs quarantined because they made an engine worker panic (those in memory, loaded from the store included).",
        q.len() as u64,
    );
    m.counter(
        "rmf_dash_quarantine_skipped_inputs_total",
        "Arrivals of a quarantined input skipped (live, and in the input log at restore).",
        q.metrics.skipped.load(Ordering::Relaxed),
    );
    m.counter(
        "rmf_dash_quarantine_evicted_total",
        "Quarantine entries forgotten in memory by its bound (--max-quarantined).",
        q.metrics.evicted.load(Ordering::Relaxed),
    );
    app.engine_held.write_metrics(m);
}

/// The leadership of the site, and who owns the private PostgreSQL.
fn leader(m: &mut Metrics, app: &AppState) {
    m.gauge(
        "rmf_dash_leader",
        LEADER_HELP,
        u64::from(app.leader.is_active()),
    );
    m.gauge(
        "rmf_dash_leader_term",
        "The leadership term held (0 without a store).",
        app.leader.term().unwrap_or(0).max(0) as u64,
    );
    if let Some(owner) = crate::store::local_pg::private_cluster_owner() {
        m.gauge(
            "rmf_dash_store_private_cluster_owner",
            "1 when this process owns the private PostgreSQL of --data-dir (it stops it at exit), \
             0 when another process owns it (this one is a client).",
            u64::from(owner),
        );
    }
}

/// The help of `rmf_dash_leader` (also written by a standby, as 0).
pub const LEADER_HELP: &str = "1 when this main process is the active one of its site.";

/// The store writer's figures.
fn store(m: &mut Metrics, s: &crate::store::StoreMetrics) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    m.gauge(
        "rmf_dash_store_up",
        "1 when the last store write succeeded, 0 during an outage.",
        u64::from(s.up.load(Ordering::Relaxed)),
    );
    m.gauge(
        "rmf_dash_store_checkpoint_ms",
        "Logical time everything is stored up to.",
        load(&s.checkpoint),
    );
    m.counter(
        "rmf_dash_store_rows_written_total",
        "Rows written to the store.",
        load(&s.rows_written),
    );
    m.counter(
        "rmf_dash_store_transactions_total",
        "Store transactions committed.",
        load(&s.transactions),
    );
    m.counter(
        "rmf_dash_store_transaction_micros_total",
        "Time spent in committed store transactions (µs).",
        load(&s.tx_micros_total),
    );
    m.gauge(
        "rmf_dash_store_last_transaction_micros",
        "Duration of the last committed store transaction (µs).",
        load(&s.tx_micros_last),
    );
    m.gauge(
        "rmf_dash_store_buffered_bytes",
        "Memory held for rows not yet written.",
        load(&s.buffered_bytes),
    );
    m.counter(
        "rmf_dash_store_failures_total",
        "Failed store transactions (each retried).",
        load(&s.failures),
    );
    m.counter(
        "rmf_dash_store_stale_reads_total",
        "Reads of the store that waited for the writer longer than their bound (answered \
         with what was stored).",
        load(&s.stale_reads),
    );
    m.counter(
        "rmf_dash_store_dropped_rows_total",
        "Rows dropped by the store's memory bound (recorded in store_gaps).",
        load(&s.dropped_rows),
    );
}

/// Server time in ms since the epoch (rmf-web returns a bare number).
pub async fn time() -> Json<u64> {
    Json(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}
