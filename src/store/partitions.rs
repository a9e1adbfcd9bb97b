//! Day partitions of the time-partitioned tables (`input_block`, `output_history`): the day of
//! a logical time, and a day's partition created in the transaction that first writes to it.
//! Retention ([`super::prune`]) drops whole days.

use std::collections::HashSet;

use super::StoreError;

/// Logical milliseconds per partition (one day).
pub const PARTITION_MS: i64 = 86_400_000;

/// Creates the day partitions that rows at `times` need (inside the transaction), unless
/// `known` (the partitions created by earlier transactions) or `created` has them; adds those
/// it created to `created` (known once the transaction commits). Each is created once: a
/// `CREATE ... IF NOT EXISTS` of an existing table makes PostgreSQL send a notice, which the
/// client logs.
pub async fn ensure(
    tx: &tokio_postgres::Transaction<'_>,
    known: &HashSet<(&'static str, i64)>,
    table: &'static str,
    times: impl Iterator<Item = i64>,
    created: &mut Vec<(&'static str, i64)>,
) -> Result<(), StoreError> {
    let mut days: Vec<i64> = times.map(|t| t.div_euclid(PARTITION_MS)).collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        if known.contains(&(table, day)) || created.contains(&(table, day)) {
            continue;
        }
        create_partition(tx, table, day).await?;
        created.push((table, day));
    }
    Ok(())
}

/// Creates day `day`'s partition of `table` unless it exists.
pub async fn create_partition(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    day: i64,
) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table}_d{day} PARTITION OF {table} \
         FOR VALUES FROM ({}) TO ({})",
        day * PARTITION_MS,
        (day + 1) * PARTITION_MS
    ))
    .await?;
    Ok(())
}
