//! Schema migrations: the plain SQL files of `migrations/`, embedded in the binary, applied in
//! order at start, in one transaction, each with its row in `schema_version`. Version 8 also
//! converts the version-7 input log into blocks ([`super::input_log::convert_v7`]).

use super::StoreError;

/// Every migration, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../migrations/0001_init.sql"),
    ),
    (
        2,
        "0002_leader",
        include_str!("../../migrations/0002_leader.sql"),
    ),
    (
        3,
        "0003_scheduled_tasks",
        include_str!("../../migrations/0003_scheduled_tasks.sql"),
    ),
    (
        4,
        "0004_dataflow_snapshot",
        include_str!("../../migrations/0004_dataflow_snapshot.sql"),
    ),
    (
        5,
        "0005_task_requests",
        include_str!("../../migrations/0005_task_requests.sql"),
    ),
    (
        6,
        "0006_site",
        include_str!("../../migrations/0006_site.sql"),
    ),
    (
        7,
        "0007_quarantine",
        include_str!("../../migrations/0007_quarantine.sql"),
    ),
    (
        8,
        "0008_storage",
        include_str!("../../migrations/0008_storage.sql"),
    ),
];

/// Applies the migrations the database has not seen; returns the schema version. Concurrent
/// starts are serialized by an advisory lock.
pub async fn run(client: &mut tokio_postgres::Client) -> Result<i32, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7021964)", &[])
        .await?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql)
            .await
            .map_err(|source| StoreError::Migration { name, source })?;
        if *version == 8 {
            super::input_log::convert_v7(&tx).await?;
        }
        tx.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "store migration applied");
    }
    tx.commit().await?;
    Ok(known)
}
