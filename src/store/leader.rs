//! Leadership of a site among its main processes (`rmf-dash serve`, and `replay` into a store):
//! which one process may ingest, derive and write. It uses the database's own primitives, a
//! session-level advisory lock and a fencing term checked by every write, no home-made
//! consensus.
//!
//! - **Lock**: every main process tries `pg_try_advisory_lock(key)` on a dedicated connection
//!   (`key` derived from the site name, [`lock_key`]) every `retry` until it gets it; meanwhile it
//!   is a [`Role::Standby`]. A process that dies loses its session, hence the lock.
//! - **Site**: a store belongs to one site (table `site`, recorded by the first term's claim):
//!   a process of another site is refused before it tries the lock ([`StoreError::OtherSite`]),
//!   and again in its claim should two sites start on a new store at once. Sites do not share a
//!   store: terms are the store's and the RMF data tables are not keyed by site, so two writers
//!   would fence each other and mix their data.
//! - **Term**: the holder applies the migrations, then claims a term (`leader.term + 1`, in a
//!   transaction that locks the one `leader` row) and records it in `leader_terms` with the
//!   checkpoint it starts from. Only then does it restore from the store and write.
//! - **Fencing**: every write transaction locks the `leader` row (`FOR UPDATE`) and checks that
//!   its term is still the latest ([`check_term`]), then records the write in its
//!   `leader_terms` row ([`record_write`]). A new term's claim waits for a write in flight, and
//!   every later write of an older term fails ([`StoreError::Fenced`]). So the writes of two
//!   processes never interleave, even when the old holder has not noticed yet that it lost the
//!   lock (a stalled process, a silent network partition): the database refuses them.
//! - **Losing the lock**: the holder watches its lock connection ([`Lease`]): when the session
//!   ends (`pg_terminate_backend`, a database restart, a network fault) or a heartbeat gets no
//!   answer, its role becomes [`Role::Paused`] at once (the writer writes nothing while paused).
//!   After `2 x retry` (time for a standby to take the lock) it tries to take the lock again: if
//!   it gets it and no term was claimed meanwhile (a database outage: nobody else could write),
//!   it is active again and writes what it buffered; otherwise it is [`Role::Deposed`], and
//!   `serve` exits with [`STEP_DOWN_EXIT`] so that its supervisor restarts it as a standby (its
//!   in-memory state is stale: a fresh start restores from the store).
//!
//! [`Leadership`] is the cheap shared handle of this process's role (`is_active()`, a `watch`
//! receiver) for anything that must act only on the active process.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{StoreError, migrate};
use crate::error::chain;

/// Exit status of a `serve` that stepped down (sysexits' EX_TEMPFAIL): restart it, it comes back
/// as a standby.
pub const STEP_DOWN_EXIT: u8 = 75;

/// How leadership is sought.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// The site: main processes of one site compete for one lock.
    pub site: String,
    /// How often a standby tries to take the lock (and the holder checks its connection).
    pub retry: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            site: "default".into(),
            retry: Duration::from_millis(500),
        }
    }
}

/// The advisory lock key of a site: FNV-1a (64 bits) of `rmf-dash/leader/<site>`.
pub fn lock_key(site: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "rmf-dash/leader/".bytes().chain(site.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The role of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waiting for the lock: serves nothing that writes.
    Standby,
    /// Holds the lock and its term: ingests, derives, writes, serves.
    Active,
    /// Was active and lost its lock connection: writes nothing until it gets the lock back
    /// with its term unchanged (or is deposed).
    Paused,
    /// Another process took over: this one must stop (`serve` exits with [`STEP_DOWN_EXIT`]).
    Deposed,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standby => "standby",
            Role::Active => "active",
            Role::Paused => "paused",
            Role::Deposed => "deposed",
        }
    }
}

#[derive(Debug)]
struct Shared {
    role: watch::Sender<Role>,
    site: String,
    writer: String,
    /// 0: no term.
    term: AtomicI64,
    lineage: Mutex<Option<String>>,
    /// Why the role last left `Active`.
    reason: Mutex<Option<String>>,
    /// Attempts to take the lock.
    attempts: AtomicU64,
}

/// The shared handle of this process's role. Cheap to clone and to read.
#[derive(Debug, Clone)]
pub struct Leadership(Arc<Shared>);

/// This process as a writer: `host[pid]`.
pub fn writer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}[{}]", std::process::id())
}

impl Leadership {
    fn with(site: &str, role: Role) -> Self {
        Leadership(Arc::new(Shared {
            role: watch::Sender::new(role),
            site: site.to_string(),
            writer: writer_id(),
            term: AtomicI64::new(0),
            lineage: Mutex::new(None),
            reason: Mutex::new(None),
            attempts: AtomicU64::new(0),
        }))
    }

    /// A process of `site` that has not taken the lock yet.
    pub fn standby(site: &str) -> Self {
        Leadership::with(site, Role::Standby)
    }

    /// A process without a store: alone, always active.
    pub fn single() -> Self {
        Leadership::with("", Role::Active)
    }

    pub fn role(&self) -> Role {
        *self.0.role.borrow()
    }

    /// Whether this process may act now (ingest, write, dispatch).
    pub fn is_active(&self) -> bool {
        self.role() == Role::Active
    }

    /// Every role change.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.0.role.subscribe()
    }

    pub fn site(&self) -> &str {
        &self.0.site
    }

    /// This process as written in `leader_terms` (`host[pid]`).
    pub fn writer(&self) -> &str {
        &self.0.writer
    }

    /// The term held (or last held).
    pub fn term(&self) -> Option<i64> {
        Some(self.0.term.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The store's lineage (the same across takeovers of one store).
    pub fn lineage(&self) -> Option<String> {
        self.0.lineage.lock().clone()
    }

    /// Why the role last left `Active` (paused or deposed).
    pub fn reason(&self) -> Option<String> {
        self.0.reason.lock().clone()
    }

    pub fn attempts(&self) -> u64 {
        self.0.attempts.load(Ordering::Relaxed)
    }

    fn set(&self, role: Role) {
        self.0.role.send_if_modified(|r| {
            // Deposed is final.
            if *r == role || *r == Role::Deposed {
                return false;
            }
            *r = role;
            true
        });
    }

    /// Another process took over: this one must stop writing and step down.
    pub fn depose(&self, reason: String) {
        if self.role() == Role::Deposed {
            return;
        }
        tracing::error!(site = %self.0.site, term = self.term(), "stepping down: {reason}");
        *self.0.reason.lock() = Some(reason);
        self.set(Role::Deposed);
    }

    /// Waits until this process is deposed; returns why.
    pub async fn deposed(&self) -> String {
        let mut rx = self.watch();
        let _ = rx.wait_for(|r| *r == Role::Deposed).await;
        self.reason().unwrap_or_default()
    }
}

/// What the writer needs to write as the holder of a term.
#[derive(Debug, Clone)]
pub struct Fence {
    pub term: i64,
    pub leadership: Leadership,
}

/// Locks the `leader` row and checks that `term` is still the latest (first statement of every
/// write transaction).
pub async fn check_term(tx: &tokio_postgres::Transaction<'_>, term: i64) -> Result<(), StoreError> {
    let current: Option<i64> = tx
        .query_opt("SELECT term FROM leader WHERE id = 1 FOR UPDATE", &[])
        .await?
        .map(|r| r.get(0));
    match current {
        Some(t) if t == term => Ok(()),
        other => {
            let current = other.unwrap_or(0);
            log_fenced(tx, term, current).await;
            Err(StoreError::Fenced { term, current })
        }
    }
}

/// Says who holds the store's latest term, for the log of a fenced process.
async fn log_fenced(tx: &tokio_postgres::Transaction<'_>, term: i64, current: i64) {
    let holder = tx
        .query_opt(
            "SELECT writer, site FROM leader_terms WHERE term = $1",
            &[&current],
        )
        .await;
    match holder {
        Ok(Some(r)) => tracing::error!(
            term,
            current,
            holder = %r.get::<_, String>(0),
            holder_site = %r.get::<_, String>(1),
            "fenced: the store's latest term belongs to another main process; this one writes \
             nothing more"
        ),
        _ => tracing::error!(
            term,
            current,
            "fenced: the store's latest term is not this process's; it writes nothing more"
        ),
    }
}

/// Refuses a process of another site than the store's, before it tries the lock: the `site`
/// table, or for a store older than it the site of its latest term (a new store belongs to no
/// site yet). Reads only: the migrations are applied by the holder of the lock.
async fn check_site(client: &tokio_postgres::Client, site: &str) -> Result<(), StoreError> {
    let tables = client
        .query_one(
            "SELECT to_regclass('site') IS NOT NULL, to_regclass('leader_terms') IS NOT NULL",
            &[],
        )
        .await?;
    let sql = match (tables.get::<_, bool>(0), tables.get::<_, bool>(1)) {
        (true, _) => "SELECT name, claimed_by FROM site WHERE id = 1",
        (false, true) => "SELECT site, writer FROM leader_terms ORDER BY term DESC LIMIT 1",
        (false, false) => return Ok(()),
    };
    match client.query_opt(sql, &[]).await? {
        Some(r) => same_site(site, r.get(0), r.get(1)),
        None => Ok(()),
    }
}

fn same_site(site: &str, store_site: String, claimed_by: String) -> Result<(), StoreError> {
    if store_site == site {
        return Ok(());
    }
    Err(StoreError::OtherSite {
        site: site.to_string(),
        store_site,
        claimed_by,
    })
}

/// Records the site of a store that has none yet, and refuses another site (in the claim's
/// transaction: of two sites starting on a new store at once, the second waits for the first's
/// row, then is refused).
async fn claim_site(
    tx: &tokio_postgres::Transaction<'_>,
    site: &str,
    writer: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO site (id, name, claimed_by) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        &[&site, &writer],
    )
    .await?;
    let row = tx
        .query_one("SELECT name, claimed_by FROM site WHERE id = 1", &[])
        .await?;
    same_site(site, row.get(0), row.get(1))
}

/// Records a write of `term` up to `checkpoint` in its `leader_terms` row.
pub async fn record_write(
    tx: &tokio_postgres::Transaction<'_>,
    term: i64,
    checkpoint: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE leader_terms SET first_write_at = coalesce(first_write_at, clock_timestamp()),
             last_write_at = clock_timestamp(), last_checkpoint_ms = $2,
             transactions = transactions + 1
         WHERE term = $1",
        &[&term, &(checkpoint as i64)],
    )
    .await?;
    Ok(())
}

/// The lock's connection, and whether its session ended.
struct LockConn {
    client: tokio_postgres::Client,
    closed: watch::Receiver<bool>,
}

async fn connect_lock(url: &str) -> Result<LockConn, StoreError> {
    let mut config = super::config(url)?;
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let (tx, closed) = watch::channel(false);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %chain(&e), "leadership lock connection closed");
        }
        let _ = tx.send(true);
    });
    Ok(LockConn { client, closed })
}

async fn try_lock(client: &tokio_postgres::Client, key: i64) -> Result<bool, StoreError> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0))
}

/// Connects if needed (checking the store's site on a new connection) and tries the lock once.
async fn attempt(
    url: &str,
    config: &LeaderConfig,
    conn: &mut Option<LockConn>,
) -> Result<bool, StoreError> {
    let c = match conn.take() {
        Some(c) if !c.client.is_closed() => c,
        _ => {
            let c = connect_lock(url).await?;
            check_site(&c.client, &config.site).await?;
            c
        }
    };
    let got = try_lock(&c.client, lock_key(&config.site)).await?;
    *conn = Some(c);
    Ok(got)
}

/// The lock, held: the term claimed and the checkpoint it starts from. Dropping it releases the
/// lock (its connection closes).
pub struct Lease {
    pub term: i64,
    pub lineage: String,
    /// The store's checkpoint when the term was claimed.
    pub checkpoint: Option<u64>,
    leadership: Leadership,
    keeper: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// What the writer of this term needs.
    pub fn fence(&self) -> Fence {
        Fence {
            term: self.term,
            leadership: self.leadership.clone(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Applies the migrations and claims the next term (holding the lock).
async fn claim(
    conn: &mut LockConn,
    config: &LeaderConfig,
    leadership: &Leadership,
) -> Result<(i64, String, Option<u64>), StoreError> {
    migrate::run(&mut conn.client).await?;
    let tx = conn.client.transaction().await?;
    claim_site(&tx, &config.site, leadership.writer()).await?;
    let lineage = uuid::Uuid::new_v4().to_string();
    let row = tx
        .query_one(
            "INSERT INTO leader (id, term, lineage)
                 VALUES (1, (SELECT coalesce(max(term), 0) + 1 FROM leader_terms), $1)
             ON CONFLICT (id) DO UPDATE SET term = leader.term + 1
             RETURNING term, lineage",
            &[&lineage],
        )
        .await?;
    let term: i64 = row.get(0);
    let lineage: String = row.get(1);
    let checkpoint: Option<i64> = tx
        .query_opt("SELECT time_ms FROM checkpoint WHERE id = 1", &[])
        .await?
        .map(|r| r.get(0));
    tx.execute(
        "INSERT INTO leader_terms (term, writer, site, acquired_at, from_checkpoint_ms)
         VALUES ($1, $2, $3, clock_timestamp(), $4)",
        &[&term, &leadership.writer(), &config.site, &checkpoint],
    )
    .await?;
    tx.commit().await?;
    Ok((term, lineage, checkpoint.map(|c| c.max(0) as u64)))
}

/// Claims a term with the lock held on `conn`, makes this process active and starts watching
/// the lock.
async fn lease(
    mut conn: LockConn,
    url: &str,
    config: &LeaderConfig,
    leadership: &Leadership,
) -> Result<Lease, StoreError> {
    let (term, lineage, checkpoint) = claim(&mut conn, config, leadership).await?;
    leadership.0.term.store(term, Ordering::Relaxed);
    *leadership.0.lineage.lock() = Some(lineage.clone());
    leadership.set(Role::Active);
    tracing::info!(site = %config.site, term, checkpoint, writer = %leadership.writer(), "leadership acquired: this process is active");
    let keeper = tokio::spawn(keep(
        conn,
        url.to_string(),
        lock_key(&config.site),
        term,
        config.retry,
        leadership.clone(),
    ));
    Ok(Lease {
        term,
        lineage,
        checkpoint,
        leadership: leadership.clone(),
        keeper,
    })
}

/// Waits until this process holds the lock of its site (trying every `retry`), then claims a
/// term: the process is active when this returns.
pub async fn acquire(
    url: &str,
    config: &LeaderConfig,
    leadership: &Leadership,
) -> Result<Lease, StoreError> {
    let retry = config.retry.max(Duration::from_millis(10));
    let mut conn: Option<LockConn> = None;
    let mut last_error = String::new();
    let mut waiting = false;
    loop {
        leadership.0.attempts.fetch_add(1, Ordering::Relaxed);
        match attempt(url, config, &mut conn).await {
            Ok(true) => {
                if let Some(c) = conn.take() {
                    match lease(c, url, config, leadership).await {
                        Ok(l) => return Ok(l),
                        Err(
                            e @ (StoreError::SchemaTooNew { .. }
                            | StoreError::Migration { .. }
                            | StoreError::OtherSite { .. }),
                        ) => {
                            return Err(e);
                        }
                        // The connection failed while claiming: the lock went with it.
                        Err(e) => tracing::warn!(
                            "claiming the leadership failed: {}; retrying",
                            chain(&e)
                        ),
                    }
                }
            }
            Ok(false) => {
                if !waiting {
                    tracing::info!(
                        site = %config.site,
                        retry_ms = retry.as_millis() as u64,
                        "standby: another main process of this site is active (it holds the \
                         leadership lock); taking over when it is gone"
                    );
                    waiting = true;
                }
            }
            Err(e @ StoreError::OtherSite { .. }) => return Err(e),
            Err(e) => {
                let e = chain(&e);
                if e != last_error {
                    tracing::warn!(site = %config.site, "standby: the store is unreachable ({e}); retrying");
                    last_error = e;
                }
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// Tries the lock once: `None` when another process holds it.
pub async fn try_acquire(
    url: &str,
    config: &LeaderConfig,
    leadership: &Leadership,
) -> Result<Option<Lease>, StoreError> {
    let mut conn = None;
    if !attempt(url, config, &mut conn).await? {
        return Ok(None);
    }
    match conn {
        Some(c) => Ok(Some(lease(c, url, config, leadership).await?)),
        None => Ok(None),
    }
}

/// Watches the lock's session; returns why it is lost.
async fn watch_session(conn: &mut LockConn, retry: Duration, limit: Duration) -> String {
    loop {
        tokio::select! {
            _ = async { drop(conn.closed.wait_for(|c| *c).await) } => {
                return "its database session ended".into();
            }
            _ = tokio::time::sleep(retry) => {
                match tokio::time::timeout(limit, conn.client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("its connection failed: {}", chain(&e)),
                    Err(_) => return format!("no answer from the database in {} ms", limit.as_millis()),
                }
            }
        }
    }
}

enum Retake {
    Held(LockConn),
    Lost(String),
}

/// After a loss: takes the lock again if nobody claimed a term meanwhile.
async fn retake(url: &str, key: i64, term: i64) -> Result<Retake, StoreError> {
    let conn = connect_lock(url).await?;
    if !try_lock(&conn.client, key).await? {
        return Ok(Retake::Lost(
            "another main process holds the leadership lock now".into(),
        ));
    }
    let current: Option<i64> = conn
        .client
        .query_opt("SELECT term FROM leader WHERE id = 1", &[])
        .await?
        .map(|r| r.get(0));
    if current == Some(term) {
        Ok(Retake::Held(conn))
    } else {
        Ok(Retake::Lost(format!(
            "another main process was active meanwhile (term {} after {term})",
            current.unwrap_or(0)
        )))
    }
}

/// The holder's watch over its lock (see the module's header).
async fn keep(
    mut conn: LockConn,
    url: String,
    key: i64,
    term: i64,
    retry: Duration,
    leadership: Leadership,
) {
    let limit = (retry * 4).max(Duration::from_secs(2));
    loop {
        let why = watch_session(&mut conn, retry, limit).await;
        drop(conn);
        tracing::error!(
            site = %leadership.site(),
            term,
            "lost the leadership lock ({why}): writing paused; a standby may take over"
        );
        *leadership.0.reason.lock() = Some(why);
        leadership.set(Role::Paused);
        tokio::time::sleep(retry * 2).await;
        let mut last_error = String::new();
        conn = loop {
            match retake(&url, key, term).await {
                Ok(Retake::Held(c)) => {
                    tracing::info!(
                        site = %leadership.site(),
                        term,
                        "leadership lock taken again and no other process was active: writing resumed"
                    );
                    leadership.set(Role::Active);
                    break c;
                }
                Ok(Retake::Lost(reason)) => {
                    leadership.depose(reason);
                    return;
                }
                Err(e) => {
                    let e = chain(&e);
                    if e != last_error {
                        tracing::warn!("taking the leadership lock again failed ({e}); retrying");
                        last_error = e;
                    }
                    tokio::time::sleep(retry).await;
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_differ_by_site() {
        assert_eq!(lock_key("default"), lock_key("default"));
        assert_ne!(lock_key("default"), lock_key("hotel"));
    }

    #[test]
    fn deposed_is_final() {
        let l = Leadership::standby("x");
        assert!(!l.is_active());
        l.set(Role::Active);
        assert!(l.is_active());
        l.depose("test".into());
        l.set(Role::Active);
        assert_eq!(l.role(), Role::Deposed);
        assert_eq!(l.reason().as_deref(), Some("test"));
    }
}
