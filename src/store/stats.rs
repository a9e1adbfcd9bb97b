//! How much the store holds (`rmf-dash store stats`, `bench --only store`): per RMF data table,
//! its bytes on disk (heap, TOAST and indexes, every partition), its rows (PostgreSQL's estimate:
//! exact right after `ANALYZE`), the logical time its rows span and what it keeps; and the WAL
//! on disk.

use std::fmt::Write as _;

use serde::Serialize;

use super::StoreError;
use super::prune::Retention;

/// What one table holds.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    pub table: &'static str,
    /// Heap, TOAST and indexes of the table and its partitions.
    pub bytes: i64,
    /// Rows (estimate; exact after `ANALYZE`).
    pub rows: i64,
    /// The logical time (ms) of its oldest and newest row.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// What it keeps: its retention, or "latest per key".
    pub keeps: String,
    /// Whether it grows with the site's age (up to its retention), rather than with the site's
    /// size only (the latest snapshot, the minute of plain input blocks).
    pub grows: bool,
}

impl TableStats {
    /// Bytes per hour of the logical time its rows span (`None` for a table that does not grow
    /// with time, or below one second of span).
    pub fn bytes_per_site_hour(&self) -> Option<f64> {
        let span = self.last_ms? - self.first_ms?;
        (self.grows && span >= 1000).then(|| self.bytes as f64 * 3_600_000.0 / span as f64)
    }
}

/// What the store holds.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub checkpoint: Option<u64>,
    pub tables: Vec<TableStats>,
    /// The WAL files on disk (`None` without the right to list them: `pg_monitor`).
    pub wal_bytes: Option<i64>,
}

impl StoreStats {
    /// Bytes of the tables that grow with the site's age (`grows`), or of the others.
    pub fn total_bytes(&self, grows: bool) -> i64 {
        let tables = self.tables.iter().filter(|t| t.grows == grows);
        tables.map(|t| t.bytes).sum()
    }
}

/// `d` in whole days when it is, else as humantime writes it.
fn days(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        _ => humantime::format_duration(d).to_string(),
    }
}

/// Every RMF data table with its logical-time column and what it keeps under `retention`.
/// Every RMF data table with the logical times of its rows' start and end, what it keeps under
/// `retention`, and whether it grows with the site's age.
fn tables(retention: &Retention) -> [(&'static str, &'static str, String, bool); 10] {
    let kept = |d| format!("{} (store prune)", days(d));
    [
        (
            "input_block",
            "first_ms, last_ms",
            kept(retention.input_log),
            true,
        ),
        (
            "input_recent",
            "first_ms, last_ms",
            "the minute not yet packed".into(),
            false,
        ),
        (
            "output_history",
            "time_ms, time_ms",
            kept(retention.history),
            true,
        ),
        (
            "room_state",
            "time_ms, time_ms",
            "latest per room".into(),
            true,
        ),
        (
            "task_state",
            "time_ms, time_ms",
            "latest per task".into(),
            true,
        ),
        ("task_log", "time_ms, time_ms", kept(retention.logs), true),
        ("fleet_log", "time_ms, time_ms", kept(retention.logs), true),
        ("alerts", "time_ms, time_ms", kept(retention.alerts), true),
        (
            "dataflow_snapshot",
            "time_ms, time_ms",
            "the latest".into(),
            false,
        ),
        (
            "quarantine",
            "time_ms, time_ms",
            "until removed".into(),
            false,
        ),
    ]
}

/// Reads the store's statistics; with `analyze`, runs `ANALYZE` first so that row counts are
/// exact.
pub async fn stats(
    client: &tokio_postgres::Client,
    retention: &Retention,
    analyze: bool,
) -> Result<StoreStats, StoreError> {
    let mut out = Vec::new();
    for (table, times, keeps, grows) in tables(retention) {
        let (start, end) = times.split_once(", ").unwrap_or((times, times));
        if analyze {
            client.batch_execute(&format!("ANALYZE {table}")).await?;
        }
        let row = client
            .query_one(
                "WITH t AS (SELECT relid FROM pg_partition_tree($1::text::regclass) WHERE isleaf \
                 UNION SELECT $1::text::regclass) \
                 SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint, \
                 coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint \
                 FROM t JOIN pg_class c ON c.oid = t.relid AND c.relkind = 'r'",
                &[&table],
            )
            .await?;
        let span = client
            .query_one(
                &format!("SELECT min({start}), max({end}) FROM {table}"),
                &[],
            )
            .await?;
        out.push(TableStats {
            table,
            bytes: row.get(0),
            rows: row.get(1),
            first_ms: span.get(0),
            last_ms: span.get(1),
            keeps,
            grows,
        });
    }
    let wal_bytes = client
        .query_one(
            "SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_waldir()",
            &[],
        )
        .await
        .ok()
        .map(|r| r.get(0));
    Ok(StoreStats {
        checkpoint: super::checkpoint(client).await?,
        tables: out,
        wal_bytes,
    })
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// The statistics as a table for a terminal.
pub fn render(stats: &StoreStats) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<18} {:>12} {:>12} {:>16} {:>16}  keeps",
        "table", "size", "rows", "site time (h)", "per site hour"
    );
    for t in &stats.tables {
        let span = match (t.first_ms, t.last_ms) {
            (Some(a), Some(b)) => format!("{:.2}", (b - a) as f64 / 3_600_000.0),
            _ => "-".into(),
        };
        let rate = t.bytes_per_site_hour().map_or("-".into(), mb);
        let _ = writeln!(
            s,
            "{:<18} {:>12} {:>12} {:>16} {:>16}  {}",
            t.table,
            mb(t.bytes as f64),
            t.rows,
            span,
            rate,
            t.keeps
        );
    }
    let (grows, bounded) = (stats.total_bytes(true), stats.total_bytes(false));
    let _ = writeln!(
        s,
        "{:<18} {:>12}  ({} growing with the site's age, {} bounded by its size)",
        "all tables",
        mb((grows + bounded) as f64),
        mb(grows as f64),
        mb(bounded as f64)
    );
    let wal = stats
        .wal_bytes
        .map_or("- (no right to list it)".into(), |b| mb(b as f64));
    let _ = writeln!(s, "{:<18} {:>12}", "WAL on disk", wal);
    let _ = writeln!(
        s,
        "checkpoint: {}",
        stats.checkpoint.map_or("none".into(), |c| c.to_string())
    );
    s
}
