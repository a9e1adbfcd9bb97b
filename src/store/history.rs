//! History reads from the store: the REST routes' task queries (every filter, order and page of
//! `GET /tasks` in SQL over the indexed `task_state` columns), task and fleet logs in a time
//! window, and alerts. The hub keeps only the last events of a log or alert room; the store keeps
//! them all, so with a store these answers reach back as far as retention keeps rows. The routes
//! merge what this returns with the hub's latest events (rows younger than the last flush).
//!
//! A few connections of their own (lazily opened, reopened after an error), so reads never wait
//! behind the writer; every query is bounded in time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use thiserror::Error;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::query::{TaskQuery, Window};

/// Connections for reads.
const CONNECTIONS: usize = 4;
/// A read that takes longer is abandoned (the route answers from memory).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most alerts one answer holds.
pub const ALERTS_LIMIT: i64 = 10_000;

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("store read failed")]
    Db(#[from] tokio_postgres::Error),
    #[error("store read timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Connect(#[from] super::StoreError),
}

/// Log entries by stream: for a task `""` (its own log), `"{phase}"` and `"{phase}/{event}"`;
/// for a fleet `""` (its own log) and the robot names. Entries are in `seq` order.
pub type Streams = BTreeMap<String, Vec<Value>>;

/// An alert request and its response, if any.
pub type AlertRecord = (Value, Option<Value>);

/// Which alerts to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter<'a> {
    pub id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub unresponded: bool,
}

/// The store's read side.
pub struct History {
    url: String,
    slots: Vec<tokio::sync::Mutex<Option<Client>>>,
    next: AtomicUsize,
    /// Reads that failed (answered from memory instead).
    pub errors: AtomicU64,
}

impl History {
    pub fn new(url: &str) -> Arc<History> {
        Arc::new(History {
            url: url.to_string(),
            slots: (0..CONNECTIONS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// Runs `read` on one of the connections (opened on first use, dropped after an error).
    async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, HistoryError> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let run = async {
            let mut slot = slot.lock().await;
            let client = match slot.take() {
                Some(c) if !c.is_closed() => c,
                _ => super::connect(&self.url).await?,
            };
            let out = read(&client).await?;
            *slot = Some(client);
            Ok(out)
        };
        let out = match tokio::time::timeout(QUERY_TIMEOUT, run).await {
            Ok(out) => out,
            Err(_) => Err(HistoryError::Timeout(QUERY_TIMEOUT)),
        };
        if out.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// One page of task states, as `read::tasks` selects and orders them.
    pub async fn tasks(&self, q: &TaskQuery) -> Result<Vec<Box<RawValue>>, HistoryError> {
        let (sql, params) = task_sql(q);
        let rows = self
            .read(async |c| {
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
                c.query(&sql, &params).await
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| RawValue::from_string(r.get::<_, String>(0)).ok())
            .collect())
    }

    /// A task's latest stored state and the logical time it was written at; `None` when the
    /// store knows nothing of the task (the state of a task that left memory, see
    /// `hub::retire`).
    pub async fn task_state(
        &self,
        task_id: &str,
    ) -> Result<Option<(u64, Box<RawValue>)>, HistoryError> {
        let id = task_id.to_string();
        let rows = self
            .read(async |c| {
                c.query(
                    "SELECT time_ms, state FROM task_state WHERE task_id = $1",
                    &[&id],
                )
                .await
            })
            .await?;
        Ok(rows.first().and_then(|r| {
            let time = r.get::<_, i64>(0).max(0) as u64;
            RawValue::from_string(r.get::<_, String>(1))
                .ok()
                .map(|v| (time, v))
        }))
    }

    /// A task's log entries in `window`; `None` when the store knows nothing of the task.
    pub async fn task_log(
        &self,
        task_id: &str,
        window: Option<Window>,
    ) -> Result<Option<Streams>, HistoryError> {
        let (from, to) = bounds(window);
        let (known, rows) = self
            .read(async |c| {
                let known: bool = c
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM task_state WHERE task_id = $1) \
                         OR EXISTS (SELECT 1 FROM task_log WHERE task_id = $1)",
                        &[&task_id],
                    )
                    .await?
                    .get(0);
                let rows = c
                    .query(
                        "SELECT stream, seq, tier, unix_millis_time, text FROM task_log \
                         WHERE task_id = $1 AND (unix_millis_time BETWEEN $2 AND $3 \
                         OR (unix_millis_time IS NULL AND $2 <= 0)) ORDER BY stream, seq",
                        &[&task_id, &from, &to],
                    )
                    .await?;
                Ok((known, rows))
            })
            .await?;
        Ok(known.then(|| streams(&rows)))
    }

    /// A fleet's log entries (its own and its robots') in `window`.
    pub async fn fleet_log(
        &self,
        fleet: &str,
        window: Option<Window>,
    ) -> Result<Streams, HistoryError> {
        let (from, to) = bounds(window);
        let rows = self
            .read(async |c| {
                c.query(
                    "SELECT robot, seq, tier, unix_millis_time, text FROM fleet_log \
                     WHERE fleet = $1 AND (unix_millis_time BETWEEN $2 AND $3 \
                     OR (unix_millis_time IS NULL AND $2 <= 0)) ORDER BY robot, seq",
                    &[&fleet, &from, &to],
                )
                .await
            })
            .await?;
        Ok(streams(&rows))
    }

    /// Alert requests (with their responses), oldest alert first, at most [`ALERTS_LIMIT`].
    pub async fn alerts(&self, f: AlertFilter<'_>) -> Result<Vec<AlertRecord>, HistoryError> {
        let rows = self
            .read(async |c| {
                c.query(
                    "SELECT request, response FROM alerts WHERE request IS NOT NULL \
                     AND ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR task_id = $2) \
                     AND (NOT $3 OR response IS NULL) ORDER BY time_ms, id LIMIT $4",
                    &[&f.id, &f.task_id, &f.unresponded, &ALERTS_LIMIT],
                )
                .await
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let request = serde_json::from_str(r.get::<_, &str>(0)).ok()?;
                let response = r
                    .get::<_, Option<&str>>(1)
                    .and_then(|s| serde_json::from_str(s).ok());
                Some((request, response))
            })
            .collect())
    }
}

/// A window as SQL bounds (all time without one).
fn bounds(window: Option<Window>) -> (i64, i64) {
    let clamp = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    window.map_or((0, i64::MAX), |w| (clamp(w.from), clamp(w.to)))
}

/// Rows `(stream, seq, tier, unix_millis_time, text)` as log entries by stream.
fn streams(rows: &[tokio_postgres::Row]) -> Streams {
    let mut out = Streams::new();
    for r in rows {
        let mut entry = Map::new();
        entry.insert("seq".into(), json!(r.get::<_, i64>(1)));
        if let Some(tier) = r.get::<_, Option<String>>(2) {
            entry.insert("tier".into(), json!(tier));
        }
        if let Some(t) = r.get::<_, Option<i64>>(3) {
            entry.insert("unix_millis_time".into(), json!(t));
        }
        if let Some(text) = r.get::<_, Option<String>>(4) {
            entry.insert("text".into(), json!(text));
        }
        out.entry(r.get(0)).or_default().push(Value::Object(entry));
    }
    out
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The SQL of a task query: the same selection and order as `read::tasks` (text compared
/// byte-wise, missing values last ascending and first descending, ties by task id).
fn task_sql(q: &TaskQuery) -> (String, Params) {
    let mut params: Params = Vec::new();
    let mut arg = |p: Box<dyn ToSql + Sync + Send>| {
        params.push(p);
        format!("${}", params.len())
    };
    let mut conditions = Vec::new();
    for (column, list) in [
        ("task_id", &q.task_id),
        ("category", &q.category),
        ("requester", &q.requester),
        ("assigned_robot", &q.assigned_to),
        ("status", &q.status),
    ] {
        if let Some(list) = list {
            conditions.push(format!("{column} = ANY({})", arg(Box::new(list.clone()))));
        }
    }
    for (column, window) in [
        ("request_time_ms", q.request_time),
        ("start_time_ms", q.start_time),
        ("finish_time_ms", q.finish_time),
    ] {
        if let Some(w) = window {
            let (from, to) = bounds(Some(w));
            let from = arg(Box::new(from));
            let to = arg(Box::new(to));
            conditions.push(format!("{column} BETWEEN {from} AND {to}"));
        }
    }
    for (key, value) in &q.labels {
        let key = arg(Box::new(key.clone()));
        let value = arg(Box::new(value.clone()));
        conditions.push(format!("{} = {value}", label_value(&key)));
    }
    let mut sql = String::from("SELECT state FROM task_state");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let mut order = Vec::new();
    for o in &q.pagination.order_by {
        let expr = match o.field.as_str() {
            "id" | "id_" => "task_id COLLATE \"C\"".to_string(),
            "category" => "category COLLATE \"C\"".to_string(),
            "assigned_to" => "assigned_robot COLLATE \"C\"".to_string(),
            "status" => "status COLLATE \"C\"".to_string(),
            "requester" => "requester COLLATE \"C\"".to_string(),
            "unix_millis_request_time" => "request_time_ms".to_string(),
            "unix_millis_start_time" => "start_time_ms".to_string(),
            "unix_millis_finish_time" => "finish_time_ms".to_string(),
            field => match field.strip_prefix("label=") {
                Some(key) => {
                    let key = arg(Box::new(key.to_string()));
                    format!("{} COLLATE \"C\"", label_value(&key))
                }
                None => continue,
            },
        };
        order.push(if o.descending {
            format!("{expr} DESC NULLS FIRST")
        } else {
            format!("{expr} ASC NULLS LAST")
        });
    }
    order.push("task_id COLLATE \"C\"".into());
    sql.push_str(" ORDER BY ");
    sql.push_str(&order.join(", "));
    let limit = arg(Box::new(
        i64::try_from(q.pagination.limit).unwrap_or(i64::MAX),
    ));
    let offset = arg(Box::new(
        i64::try_from(q.pagination.offset).unwrap_or(i64::MAX),
    ));
    sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
    (sql, params)
}

/// The value of booking label `key` (the parameter `$n`): `k=v` gives `v`, a bare `k` gives
/// `''`, the last such label wins (as `read::labels`).
fn label_value(key: &str) -> String {
    format!(
        "(SELECT CASE WHEN l = {key} THEN '' ELSE substr(l, length({key}) + 2) END \
         FROM unnest(labels) WITH ORDINALITY AS u(l, i) \
         WHERE l = {key} OR left(l, length({key}) + 1) = {key} || '=' ORDER BY i DESC LIMIT 1)"
    )
}

/// Tasks that ended and left memory are recalled from their stored state.
impl crate::hub::retire::Recall for History {
    fn recall<'a>(
        &'a self,
        room: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Option<(u64, crate::hub::Raw)>> {
        Box::pin(async move {
            let task = crate::hub::retire::task_of_state_room(room)?;
            match self.task_state(task).await {
                Ok(found) => found.map(|(t, v)| (t, crate::hub::Raw::from(v))),
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), room, "a retired room not recalled from the store");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{OrderBy, Pagination};

    #[test]
    fn task_sql_has_every_filter_and_the_order() {
        let q = TaskQuery {
            status: Some(vec!["queued".into()]),
            labels: vec![("zone".into(), "a".into())],
            request_time: Some(Window { from: 5, to: 9 }),
            pagination: Pagination {
                limit: 10,
                offset: 20,
                order_by: vec![OrderBy {
                    field: "unix_millis_start_time".into(),
                    descending: true,
                }],
            },
            ..TaskQuery::default()
        };
        let (sql, params) = task_sql(&q);
        assert_eq!(params.len(), 7);
        assert!(sql.contains("status = ANY($1)"), "{sql}");
        assert!(sql.contains("request_time_ms BETWEEN $2 AND $3"), "{sql}");
        assert!(
            sql.ends_with(
                "ORDER BY start_time_ms DESC NULLS FIRST, task_id COLLATE \"C\" LIMIT $6 OFFSET $7"
            ),
            "{sql}"
        );
    }

    #[test]
    fn windows_clamp_to_sql_bounds() {
        assert_eq!(bounds(None), (0, i64::MAX));
        assert_eq!(
            bounds(Some(Window {
                from: 3,
                to: u64::MAX
            })),
            (3, i64::MAX)
        );
    }
}
