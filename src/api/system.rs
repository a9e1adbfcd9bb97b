//! `/health` (liveness and readiness), `/metrics` (Prometheus text), `/time` (`/user` and
//! `/permissions` are in `crate::users::routes`).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use crate::ingest::feed::Source;

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

/// Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, lines: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let per_source = |counters: &[std::sync::atomic::AtomicU64; 3]| -> Vec<(String, u64)> {
        Source::ALL
            .iter()
            .map(|s| {
                (
                    format!("{{source=\"{}\"}}", s.as_str()),
                    counters[*s as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    };
    gauge(
        "rmf_dash_ingest_records_total",
        "Records received, by source.",
        "counter",
        &per_source(&app.feed_metrics.records),
    );
    gauge(
        "rmf_dash_ingest_invalid_total",
        "Records that gave no input (invalid), by source.",
        "counter",
        &per_source(&app.feed_metrics.invalid),
    );
    let fed = app.feed_metrics.time.load(Ordering::Relaxed);
    let delivered = app.delivered.load(Ordering::Relaxed);
    gauge(
        "rmf_dash_engine_frontier_lag_ms",
        "Logical time fed minus the engine's output frontier.",
        "gauge",
        &[(String::new(), fed.saturating_sub(delivered))],
    );
    gauge(
        "rmf_dash_feed_backlog",
        "Records waiting for the feeder.",
        "gauge",
        &[(String::new(), app.feed.backlog() as u64)],
    );
    let (rooms, subscriptions, behind) = app.hub.sizes();
    gauge(
        "rmf_dash_rooms",
        "Rooms with a value or a subscriber.",
        "gauge",
        &[(String::new(), rooms as u64)],
    );
    gauge(
        "rmf_dash_subscriptions",
        "Room subscriptions.",
        "gauge",
        &[(String::new(), subscriptions as u64)],
    );
    gauge(
        "rmf_dash_subscribers_behind",
        "Subscribers with coalesced rooms to catch up on.",
        "gauge",
        &[(String::new(), behind as u64)],
    );
    gauge(
        "rmf_dash_socketio_connections",
        "Connected socket.io clients.",
        "gauge",
        &[(
            String::new(),
            app.sockets.connections.load(Ordering::Relaxed),
        )],
    );
    let internal = &app.internal.metrics;
    gauge(
        "rmf_dash_internal_frames_total",
        "Frames received on /_internal, by result (each frame counted once).",
        "counter",
        &internal.by_result(),
    );
    gauge(
        "rmf_dash_internal_refused_total",
        "/_internal connections refused before the upgrade, by reason (no credential, or one that is neither the internal token nor a valid client JWT).",
        "counter",
        &internal.refused(),
    );
    gauge(
        "rmf_dash_internal_connections",
        "Connected /_internal clients (fleet adapters, task dispatcher).",
        "gauge",
        &[(String::new(), internal.connections.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_json_refused_total",
        crate::json_limits::METRIC_HELP,
        "counter",
        &crate::json_limits::metrics(),
    );
    let q = &app.quarantine;
    gauge(
        "rmf_dash_engine_panics_total",
        "Engine worker panics (each rebuilt the engine in place without the input that caused it).",
        "counter",
        &[(String::new(), q.metrics.panics.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_quarantined_inputs_total",
        "Inputs quarantined because they made an engine worker panic (those in memory, loaded from the store included).",
        "counter",
        &[(String::new(), q.len() as u64)],
    );
    gauge(
        "rmf_dash_quarantine_skipped_inputs_total",
        "Arrivals of a quarantined input skipped (live, and in the input log at restore).",
        "counter",
        &[(String::new(), q.metrics.skipped.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_quarantine_evicted_total",
        "Quarantine entries forgotten in memory by its bound (--max-quarantined).",
        "counter",
        &[(String::new(), q.metrics.evicted.load(Ordering::Relaxed))],
    );
    let m = &app.hub.metrics;
    gauge(
        "rmf_dash_rooms_retired_total",
        "Rooms retired: their entity ended and left the engine (--ended-task-retention).",
        "counter",
        &[(String::new(), m.retired.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_rooms_revived_total",
        "Retired rooms taken back from the archive or the store for a subscriber or a read.",
        "counter",
        &[(String::new(), m.revived.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_rooms_archived",
        "Final values of retired rooms held in memory (--archived-rooms).",
        "gauge",
        &[(String::new(), app.hub.archived() as u64)],
    );
    gauge(
        "rmf_dash_deliveries_total",
        "Room events sent to subscribers.",
        "counter",
        &[(String::new(), m.deliveries.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_coalesced_total",
        "Deliveries that found a full buffer and were coalesced.",
        "counter",
        &[(String::new(), m.coalesced.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_stream_events_lost_total",
        "Stream events a slow subscriber lost.",
        "counter",
        &[(String::new(), m.lost.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_output_changes_total",
        "Output changes applied by the hub.",
        "counter",
        &[(String::new(), m.changes.load(Ordering::Relaxed))],
    );
    gauge(
        "rmf_dash_leader",
        "1 when this main process is the active one of its site.",
        "gauge",
        &[(String::new(), u64::from(app.leader.is_active()))],
    );
    gauge(
        "rmf_dash_leader_term",
        "The leadership term held (0 without a store).",
        "gauge",
        &[(String::new(), app.leader.term().unwrap_or(0).max(0) as u64)],
    );
    if let Some(owner) = crate::store::local_pg::private_cluster_owner() {
        gauge(
            "rmf_dash_store_private_cluster_owner",
            "1 when this process owns the private PostgreSQL of --data-dir (it stops it at exit), \
             0 when another process owns it (this one is a client).",
            "gauge",
            &[(String::new(), u64::from(owner))],
        );
    }
    if let Some(s) = &app.store {
        let load =
            |a: &std::sync::atomic::AtomicU64| vec![(String::new(), a.load(Ordering::Relaxed))];
        gauge(
            "rmf_dash_store_up",
            "1 when the last store write succeeded, 0 during an outage.",
            "gauge",
            &[(String::new(), u64::from(s.up.load(Ordering::Relaxed)))],
        );
        gauge(
            "rmf_dash_store_checkpoint_ms",
            "Logical time everything is stored up to.",
            "gauge",
            &load(&s.checkpoint),
        );
        gauge(
            "rmf_dash_store_rows_written_total",
            "Rows written to the store.",
            "counter",
            &load(&s.rows_written),
        );
        gauge(
            "rmf_dash_store_transactions_total",
            "Store transactions committed.",
            "counter",
            &load(&s.transactions),
        );
        gauge(
            "rmf_dash_store_transaction_micros_total",
            "Time spent in committed store transactions (µs).",
            "counter",
            &load(&s.tx_micros_total),
        );
        gauge(
            "rmf_dash_store_last_transaction_micros",
            "Duration of the last committed store transaction (µs).",
            "gauge",
            &load(&s.tx_micros_last),
        );
        gauge(
            "rmf_dash_store_buffered_bytes",
            "Memory held for rows not yet written.",
            "gauge",
            &load(&s.buffered_bytes),
        );
        gauge(
            "rmf_dash_store_failures_total",
            "Failed store transactions (each retried).",
            "counter",
            &load(&s.failures),
        );
        gauge(
            "rmf_dash_store_stale_reads_total",
            "Reads of the store that waited for the writer longer than their bound (answered \
             with what was stored).",
            "counter",
            &load(&s.stale_reads),
        );
        gauge(
            "rmf_dash_store_dropped_rows_total",
            "Rows dropped by the store's memory bound (recorded in store_gaps).",
            "counter",
            &load(&s.dropped_rows),
        );
    }
    if let Some(h) = &app.history {
        gauge(
            "rmf_dash_store_read_failures_total",
            "History reads the store could not answer (answered from memory instead).",
            "counter",
            &[(String::new(), h.errors.load(Ordering::Relaxed))],
        );
    }
    app.http.write(&mut out);
    app.sockets.write_metrics(&mut out);
    app.feed_metrics.names.write(&mut out);
    app.engine_held.write_metrics(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Server time in ms since the epoch (rmf-web returns a bare number).
pub async fn time() -> Json<u64> {
    Json(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}
