//! Where scheduled tasks are kept, behind one handle for the routes and the dispatch loop: the
//! store's tables ([`super::store`]) or memory ([`super::memory`], `--no-db`, for the life of
//! the process). Both answer every call with the same semantics.
//!
//! With the store, requests share one reconnecting client, and [`ScheduleStore::claim_due`] has
//! a connection of its own (its transaction locks rows; only the dispatch loop calls it),
//! connected again after an error.

use std::sync::{Mutex, MutexGuard};

use chrono_tz::Tz;
use tokio_postgres::Client;

use super::ScheduleError;
use super::memory::Memory;
use super::store::{self, Claim, Claimed, Run, Stored, Write};
use crate::store::{SharedClient, StoreError};

pub enum ScheduleStore {
    Pg(Box<Pg>),
    Memory(Mutex<Memory>),
}

pub struct Pg {
    url: String,
    requests: SharedClient,
    /// The dispatch loop's connection, for [`store::claim_due`].
    claims: tokio::sync::Mutex<Option<Client>>,
}

fn lock(m: &Mutex<Memory>) -> MutexGuard<'_, Memory> {
    // Every change is complete before it can panic: a poisoned state is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Calls the function of the same name of [`store`] (with the shared client) or [`Memory`].
macro_rules! call {
    ($self:ident . $f:ident ( $($arg:expr),* )) => {
        match $self {
            ScheduleStore::Pg(p) => store::$f(&*p.requests.get().await?, $($arg),*).await,
            ScheduleStore::Memory(m) => lock(m).$f($($arg),*),
        }
    };
}

impl ScheduleStore {
    /// The store's tables (its schema is already migrated).
    pub async fn open(url: &str) -> Result<ScheduleStore, StoreError> {
        Ok(ScheduleStore::Pg(Box::new(Pg {
            url: url.into(),
            requests: SharedClient::connect(url).await?,
            claims: tokio::sync::Mutex::new(None),
        })))
    }

    /// Empty, in memory.
    pub fn memory() -> ScheduleStore {
        ScheduleStore::Memory(Mutex::new(Memory::default()))
    }

    /// Whether the tasks live in memory (lost when the process ends).
    pub fn in_memory(&self) -> bool {
        matches!(self, ScheduleStore::Memory(_))
    }

    pub async fn create(
        &self,
        created_by: &str,
        now: i64,
        w: &Write,
    ) -> Result<Stored, ScheduleError> {
        call!(self.create(created_by, now, w))
    }

    pub async fn get(&self, id: i64) -> Result<Option<Stored>, ScheduleError> {
        call!(self.get(id))
    }

    /// See [`store::list`].
    pub async fn list(
        &self,
        start_before: i64,
        until_after: i64,
        order_by: &[(String, bool)],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Stored>, ScheduleError> {
        call!(self.list(start_before, until_after, order_by, limit, offset))
    }

    pub async fn update(&self, id: i64, w: &Write) -> Result<Stored, ScheduleError> {
        call!(self.update(id, w))
    }

    pub async fn delete(&self, id: i64) -> Result<(), ScheduleError> {
        call!(self.delete(id))
    }

    pub async fn add_except_date(&self, id: i64, date: &str) -> Result<(), ScheduleError> {
        call!(self.add_except_date(id, date))
    }

    pub async fn runs(&self, id: i64) -> Result<Vec<Run>, ScheduleError> {
        call!(self.runs(id))
    }

    /// See [`store::claim_due`].
    pub async fn claim_due(
        &self,
        tz: Tz,
        now: i64,
        catch_up_ms: i64,
    ) -> Result<Claimed, ScheduleError> {
        let p = match self {
            ScheduleStore::Pg(p) => p,
            ScheduleStore::Memory(m) => return lock(m).claim_due(tz, now, catch_up_ms),
        };
        let mut slot = p.claims.lock().await;
        let mut c = match slot.take().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => crate::store::connect(&p.url).await?,
        };
        let claimed = store::claim_due(&mut c, tz, now, catch_up_ms).await;
        // Kept unless it failed: a fresh connection for the next pass then.
        if claimed.is_ok() {
            *slot = Some(c);
        }
        claimed
    }

    pub async fn next_occurrence(&self, tz: Tz, now: i64) -> Result<Option<i64>, ScheduleError> {
        call!(self.next_occurrence(tz, now))
    }

    pub async fn finish(
        &self,
        claim: &Claim,
        status: &str,
        task_id: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> Result<(), ScheduleError> {
        call!(self.finish(claim, status, task_id, detail, now))
    }

    pub async fn unconfirmed(&self) -> Result<Vec<Claim>, ScheduleError> {
        call!(self.unconfirmed())
    }

    pub async fn task_with_label(&self, label: &str) -> Result<Option<String>, ScheduleError> {
        call!(self.task_with_label(label))
    }
}
