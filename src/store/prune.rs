//! Retention (`rmf-dash store prune`, and `serve` every `--prune-every` while active): per table, rows older than the retention before the
//! checkpoint (the logical "now" of the store) go. The input log and the output history lose
//! whole day partitions (a partition goes once its last day is older than the retention); logs
//! and alerts lose rows by their indexed time.
//!
//! The input log is what a restart rebuilds the dataflow state from: keep it at least as long as
//! the longest window and heartbeat (15 minutes). An entity whose last input is older than the
//! input-log retention is not rebuilt after a restart (its sticky value is still restored).

use std::time::Duration;

use super::StoreError;
use super::partitions::PARTITION_MS;

/// Retention per table.
#[derive(Debug, Clone)]
pub struct Retention {
    pub input_log: Duration,
    pub history: Duration,
    pub logs: Duration,
    pub alerts: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Retention {
            input_log: Duration::from_secs(7 * DAY),
            history: Duration::from_secs(7 * DAY),
            logs: Duration::from_secs(30 * DAY),
            alerts: Duration::from_secs(90 * DAY),
        }
    }
}

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub partitions: Vec<String>,
    pub log_rows: u64,
    pub alert_rows: u64,
}

/// Applies `retention` now.
pub async fn prune(
    client: &tokio_postgres::Client,
    retention: &Retention,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let Some(now) = super::checkpoint(client).await? else {
        return Ok(pruned);
    };
    let now = now as i64;
    let cutoff = |d: Duration| now - d.as_millis() as i64;
    for (table, keep) in [
        ("input_block", retention.input_log),
        ("output_history", retention.history),
    ] {
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1",
                &[&table],
            )
            .await?;
        let prefix = format!("{table}_d");
        for r in rows {
            let name: String = r.get(0);
            let Some(day) = name
                .strip_prefix(&prefix)
                .and_then(|d| d.parse::<i64>().ok())
            else {
                continue;
            };
            if (day + 1) * PARTITION_MS <= cutoff(keep) {
                client.batch_execute(&format!("DROP TABLE {name}")).await?;
                tracing::info!(partition = name, "store partition dropped (retention)");
                pruned.partitions.push(name);
            }
        }
    }
    for table in ["task_log", "fleet_log"] {
        pruned.log_rows += client
            .execute(
                &format!("DELETE FROM {table} WHERE time_ms < $1"),
                &[&cutoff(retention.logs)],
            )
            .await?;
    }
    pruned.alert_rows = client
        .execute(
            "DELETE FROM alerts WHERE time_ms < $1",
            &[&cutoff(retention.alerts)],
        )
        .await?;
    pruned.partitions.sort();
    Ok(pruned)
}

/// How `serve` applies retention on its own.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub url: String,
    pub retention: Retention,
    /// Between two prunes.
    pub every: Duration,
}

/// Prunes the store at once and then every `every`, while `active` says this process is the
/// site's active main process (a standby's store is its active's to prune). A failed prune is
/// logged and tried again at the next period.
pub fn spawn(
    periodic: Periodic,
    mut active: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            while !*active.borrow_and_update() {
                if active.changed().await.is_err() {
                    return;
                }
            }
            match prune_once(&periodic).await {
                Ok(p) if p == Pruned::default() => {
                    tracing::debug!("store retention: nothing to drop")
                }
                Ok(p) => tracing::info!(
                    partitions = p.partitions.len(),
                    log_rows = p.log_rows,
                    alert_rows = p.alert_rows,
                    "store retention applied"
                ),
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "store retention failed: tried again at the next period")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(periodic.every) => {}
                r = active.changed() => if r.is_err() { return },
            }
        }
    })
}

async fn prune_once(periodic: &Periodic) -> Result<Pruned, StoreError> {
    let client = super::connect(&periodic.url).await?;
    prune(&client, &periodic.retention).await
}
