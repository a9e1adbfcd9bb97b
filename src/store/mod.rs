//! The PostgreSQL store (DESIGN.md invariants 5 and 6, persistence model): the schema
//! (`migrations/`, applied in order at start), the batched [`writer`], the [`restore`] at start,
//! [`dump`] and retention ([`prune`]), and the private [`local_pg`] cluster used when no database
//! URL is given.
//!
//! - Consistency: one transaction per flush writes the inputs and outputs of every logical time
//!   up to a time `C` and records `C` in `checkpoint`; the store always holds an exact prefix of
//!   the run.
//! - Restore: the hub is seeded with the stored room values and sequence numbers, and the engine
//!   is fed the stored input log up to `C`; its outputs for times up to `C` (already stored and
//!   already in the hub) are dropped ([`pipeline`]), so nothing is sent twice or gets a new seq.
//! - Leadership ([`leader`]): only the process holding the site's advisory lock and the latest
//!   term writes; every write transaction checks the term. A store belongs to one site (table
//!   `site`): a main process of another site is refused at start.

pub mod dump;
pub mod history;
pub mod input_log;
pub mod leader;
pub mod local_pg;
pub mod migrate;
pub mod partitions;
pub mod pipeline;
pub mod prune;
pub mod quarantine;
pub mod restore;
pub mod rows;
pub mod shared;
pub mod stats;
pub mod task_requests;
pub mod writer;

use thiserror::Error;

pub use local_pg::LocalPg;
pub use shared::SharedClient;
pub use writer::{StoreHandle, StoreMetrics, WriterConfig};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("PostgreSQL")]
    Pg(#[from] tokio_postgres::Error),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("migration {name}")]
    Migration {
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the store's schema is version {found}, newer than this rmf-dash knows ({known})")]
    SchemaTooNew { found: i32, known: i32 },
    #[error(
        "no PostgreSQL server binaries found in /usr/lib/postgresql/*/bin: install them \
         (Debian/Ubuntu: `apt-get install postgresql`), give --database-url, or run with --no-db"
    )]
    NoServerBinaries,
    #[error("local PostgreSQL in {dir}: {message}")]
    Local { dir: String, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the store writer has stopped")]
    Stopped,
    #[error(
        "fenced: this process's term {term} is not the store's latest ({current}): another main \
         process is active"
    )]
    Fenced { term: i64, current: i64 },
    #[error(
        "another process is active for site {site} (it holds the leadership lock): stop it, or \
         use another store"
    )]
    Busy { site: String },
    #[error(
        "this store belongs to site {store_site:?} (first claimed by {claimed_by}), not to this \
         process's site {site:?} (--site-name): one site per database; use another database or \
         schema for site {site:?}"
    )]
    OtherSite {
        site: String,
        store_site: String,
        claimed_by: String,
    },
}

/// The connection settings of `url`; every connection of this process is named
/// `rmf-dash[PID]` in `pg_stat_activity` unless the URL names it.
pub fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Url(crate::error::chain(&e)))?;
    if config.get_application_name().is_none() {
        config.application_name(format!("rmf-dash[{}]", std::process::id()));
    }
    Ok(config)
}

/// Connects one client; its connection runs on a spawned task (logged when it fails).
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config(url)?.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %crate::error::chain(&e), "store connection closed");
        }
    });
    Ok(client)
}

/// The checkpoint: every input and output up to this logical time is stored.
pub async fn checkpoint(client: &tokio_postgres::Client) -> Result<Option<u64>, StoreError> {
    let row = client
        .query_opt("SELECT time_ms FROM checkpoint WHERE id = 1", &[])
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
}
