//! The quarantine's table in the store (`migrations/0007_quarantine.sql`): the latest entries
//! are loaded at start, before the restore feeds the input log; new entries are written by a task
//! of their own, on their own connection, as soon as they are found (not with the writer's
//! batches, which only hold completed times). A write that fails is retried with backoff until
//! it succeeds; the row is keyed by the digest, so a retry, or a second process that found the
//! same input, writes it once.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{StoreError, connect};
use crate::quarantine::{Digest, Entry, Quarantine};

/// Loads the latest stored entries into `quarantine` and writes its new ones to the store from
/// now on; returns how many were loaded. Call after the migrations.
pub async fn open(url: &str, quarantine: &Arc<Quarantine>) -> Result<usize, StoreError> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT kind, key, time_ms, source, digest, reason FROM quarantine \
             ORDER BY quarantined_at DESC, digest LIMIT $1",
            &[&(quarantine.max_entries() as i64)],
        )
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    // Oldest first: the memory bound forgets the oldest.
    for row in rows.iter().rev() {
        let hex: &str = row.get(4);
        let Some(digest) = Digest::from_hex(hex) else {
            tracing::warn!(
                digest = hex,
                "stored quarantine entry with an invalid digest: skipped"
            );
            continue;
        };
        entries.push(Entry {
            kind: row.get(0),
            key: row.get(1),
            time: row.get::<_, i64>(2).max(0) as u64,
            source: row.get(3),
            digest,
            reason: row.get(5),
        });
    }
    let loaded = entries.len();
    quarantine.load(entries);
    if loaded > 0 {
        tracing::warn!(
            entries = loaded,
            "quarantined inputs loaded from the store: they are skipped on restore and on arrival"
        );
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    quarantine.persist_to(tx);
    tokio::spawn(write_entries(
        url.to_string(),
        client,
        rx,
        Arc::downgrade(quarantine),
    ));
    Ok(loaded)
}

/// Writes every entry received, in order, each until it is written.
async fn write_entries(
    url: String,
    client: tokio_postgres::Client,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Entry>,
    quarantine: Weak<Quarantine>,
) {
    let mut client = Some(client);
    while let Some(entry) = rx.recv().await {
        let mut backoff = Duration::from_millis(100);
        loop {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = connect(&url).await.ok();
            }
            if let Some(c) = &client {
                match insert(c, &entry).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(digest = %entry.digest, error = %crate::error::chain(&e), "writing a quarantine entry failed: retrying");
                        client = None;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        match quarantine.upgrade() {
            Some(q) => q.written_one(),
            None => return,
        }
    }
}

async fn insert(client: &tokio_postgres::Client, e: &Entry) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO quarantine (digest, kind, key, time_ms, source, reason) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING",
            &[
                &e.digest.to_string(),
                &e.kind,
                &e.key,
                &(e.time.min(i64::MAX as u64) as i64),
                &e.source,
                &e.reason,
            ],
        )
        .await?;
    Ok(())
}
