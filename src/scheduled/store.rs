//! The tables of scheduled tasks: `scheduled_tasks` (one row per scheduled task, with
//! `checked_until_ms`: every occurrence up to it has been claimed or let pass) and
//! `scheduled_task_runs` (one row per claimed occurrence, unique by `(scheduled_task,
//! occurrence_ms)`, with the outcome of its dispatch). [`claim_due`] claims due occurrences and
//! advances `checked_until_ms` in one transaction. Also the records both backends share
//! ([`Stored`], [`Run`], [`Claim`]) and what a pass claims of one task ([`due`]); the
//! in-memory backend is [`super::memory`], the handle over both [`super::storage`].

use chrono_tz::Tz;
use serde::Serialize;
use tokio_postgres::{Client, Row as PgRow};

use super::{Occurrences, Plan, Schedule, ScheduleError, ScheduledTask, rfc3339};

/// A stored scheduled task.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: i64,
    pub created_by: String,
    pub created_ms: i64,
    /// rmf-web's `TaskRequest`, JSON.
    pub task_request: String,
    pub schedules: Vec<Schedule>,
    pub start_from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub except_dates: Vec<String>,
    pub last_ran_ms: Option<i64>,
    pub checked_until_ms: i64,
}

const COLUMNS: &str = "id, created_by, created_ms, task_request, schedules, start_from_ms, \
    until_ms, except_dates, last_ran_ms, checked_until_ms";

impl Stored {
    fn from_row(r: &PgRow) -> Result<Stored, ScheduleError> {
        let id: i64 = r.get(0);
        let schedules: Vec<Schedule> = serde_json::from_str(r.get::<_, &str>(4))
            .map_err(|e| ScheduleError::Invalid(format!("stored schedules of {id}: {e}")))?;
        Ok(Stored {
            id,
            created_by: r.get(1),
            created_ms: r.get(2),
            task_request: r.get(3),
            schedules,
            start_from_ms: r.get(5),
            until_ms: r.get(6),
            except_dates: r.get(7),
            last_ran_ms: r.get(8),
            checked_until_ms: r.get(9),
        })
    }

    pub fn plan(&self) -> Plan {
        Plan {
            schedules: self.schedules.clone(),
            start_from: self.start_from_ms,
            until: self.until_ms,
            except_dates: self.except_dates.clone(),
            created: self.created_ms,
        }
    }

    /// rmf-web's answer.
    pub fn to_api(&self) -> ScheduledTask {
        ScheduledTask {
            id: self.id,
            // rmf-web's `TaskRequest` document: every field, null when absent.
            task_request: serde_json::from_str(&self.task_request)
                .map(rmf_dash_dataflows::model::shape::task_request)
                .unwrap_or(serde_json::Value::Null),
            created_by: self.created_by.clone(),
            schedules: self.schedules.clone(),
            last_ran: self.last_ran_ms.map(rfc3339),
            start_from: self.start_from_ms.map(rfc3339),
            until: self.until_ms.map(rfc3339),
            except_dates: self.except_dates.clone(),
        }
    }
}

/// What a create or an update writes.
#[derive(Debug, Clone)]
pub struct Write {
    pub task_request: String,
    pub schedules: Vec<Schedule>,
    pub start_from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub except_dates: Vec<String>,
}

fn schedules_json(s: &[Schedule]) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "[]".into())
}

/// Creates a scheduled task at `now` (nothing before `now` is ever dispatched).
pub async fn create(
    c: &Client,
    created_by: &str,
    now: i64,
    w: &Write,
) -> Result<Stored, ScheduleError> {
    let row = c
        .query_one(
            &format!(
                "INSERT INTO scheduled_tasks (created_by, created_ms, task_request, schedules, \
                 start_from_ms, until_ms, except_dates, checked_until_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $2) RETURNING {COLUMNS}"
            ),
            &[
                &created_by,
                &now,
                &w.task_request,
                &schedules_json(&w.schedules),
                &w.start_from_ms,
                &w.until_ms,
                &w.except_dates,
            ],
        )
        .await?;
    Stored::from_row(&row)
}

pub async fn get(c: &Client, id: i64) -> Result<Option<Stored>, ScheduleError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM scheduled_tasks WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(Stored::from_row)
    .transpose()
}

/// rmf-web's list: tasks starting before `start_before` (or without `start_from`) and ending
/// after `until_after` (or without `until`), sorted by `order_by` (`id`, `created_by`,
/// `start_from`, `until`, `last_ran`, `-` for descending; default id).
pub async fn list(
    c: &Client,
    start_before: i64,
    until_after: i64,
    order_by: &[(String, bool)],
    limit: i64,
    offset: i64,
) -> Result<Vec<Stored>, ScheduleError> {
    let mut order: Vec<String> = order_by
        .iter()
        .map(|(column, desc)| format!("{column} {}", if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("id ASC".into());
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM scheduled_tasks \
             WHERE (start_from_ms IS NULL OR start_from_ms <= $1) \
             AND (until_ms IS NULL OR until_ms >= $2) \
             ORDER BY {} LIMIT $3 OFFSET $4",
            order.join(", ")
        ),
        &[&start_before, &until_after, &limit, &offset],
    )
    .await?
    .iter()
    .map(Stored::from_row)
    .collect()
}

/// The column of a sort key of `order_by`.
pub fn order_column(key: &str) -> Option<&'static str> {
    Some(match key {
        "id" => "id",
        "created_by" => "created_by",
        "start_from" => "start_from_ms",
        "until" => "until_ms",
        "last_ran" => "last_ran_ms",
        _ => return None,
    })
}

/// Replaces what a scheduled task does and when (its claims and `checked_until_ms` stay: an
/// occurrence already claimed is not dispatched again, nothing in the past is).
pub async fn update(c: &Client, id: i64, w: &Write) -> Result<Stored, ScheduleError> {
    let row = c
        .query_opt(
            &format!(
                "UPDATE scheduled_tasks SET task_request = $2, schedules = $3, \
                 start_from_ms = $4, until_ms = $5, except_dates = $6 WHERE id = $1 \
                 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &w.task_request,
                &schedules_json(&w.schedules),
                &w.start_from_ms,
                &w.until_ms,
                &w.except_dates,
            ],
        )
        .await?
        .ok_or(ScheduleError::NotFound(id))?;
    Stored::from_row(&row)
}

pub async fn delete(c: &Client, id: i64) -> Result<(), ScheduleError> {
    if c.execute("DELETE FROM scheduled_tasks WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Err(ScheduleError::NotFound(id));
    }
    Ok(())
}

/// Adds an except date (`YYYY-MM-DD`) unless present.
pub async fn add_except_date(c: &Client, id: i64, date: &str) -> Result<(), ScheduleError> {
    let n = c
        .execute(
            "UPDATE scheduled_tasks SET except_dates = CASE WHEN $2 = ANY(except_dates) \
             THEN except_dates ELSE array_append(except_dates, $2) END \
             WHERE id = $1 AND cardinality(except_dates) < $3",
            &[&id, &date, &(super::MAX_EXCEPT_DATES as i32)],
        )
        .await?;
    if n == 0 {
        return match get(c, id).await? {
            None => Err(ScheduleError::NotFound(id)),
            Some(_) => Err(ScheduleError::Invalid(format!(
                "at most {} except dates",
                super::MAX_EXCEPT_DATES
            ))),
        };
    }
    Ok(())
}

/// One claimed occurrence, as `GET /scheduled_tasks/{id}/runs` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scheduled_task: i64,
    /// Unix ms.
    pub occurrence: i64,
    pub request_id: String,
    /// `claimed` (not yet answered), `dispatched`, `failed` (RMF refused or the link failed),
    /// `unanswered` (no answer in time), `not_permitted` (the creator may no longer submit).
    pub status: String,
    pub task_id: Option<String>,
    pub claimed_ms: i64,
    pub attempts: i32,
    pub detail: Option<String>,
}

const RUN_COLUMNS: &str =
    "scheduled_task, occurrence_ms, request_id, status, task_id, claimed_ms, attempts, detail";

fn run_from_row(r: &PgRow) -> Run {
    Run {
        scheduled_task: r.get(0),
        occurrence: r.get(1),
        request_id: r.get(2),
        status: r.get(3),
        task_id: r.get(4),
        claimed_ms: r.get(5),
        attempts: r.get(6),
        detail: r.get(7),
    }
}

/// The claimed occurrences of a scheduled task, oldest first (the last 1000).
pub async fn runs(c: &Client, id: i64) -> Result<Vec<Run>, ScheduleError> {
    let mut runs: Vec<Run> = c
        .query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM scheduled_task_runs WHERE scheduled_task = $1 \
                 ORDER BY occurrence_ms DESC LIMIT 1000"
            ),
            &[&id],
        )
        .await?
        .iter()
        .map(run_from_row)
        .collect();
    runs.reverse();
    Ok(runs)
}

/// A claimed occurrence to dispatch.
#[derive(Debug, Clone)]
pub struct Claim {
    pub task: Stored,
    pub occurrence: i64,
    pub request_id: String,
}

/// The deterministic request id of an occurrence (uuid v5 of the scheduled task and the
/// occurrence): a re-sent claim carries the same id.
pub fn request_id(id: i64, occurrence: i64) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d0f_4a9e_5b8e_4d1c_9f3a_2e7c_51b0_a8d4);
    uuid::Uuid::new_v5(
        &NAMESPACE,
        format!("scheduled_task/{id}/{occurrence}").as_bytes(),
    )
    .to_string()
}

/// What one pass of [`claim_due`] did.
#[derive(Debug, Default)]
pub struct Claimed {
    pub claims: Vec<Claim>,
    /// Occurrences older than the catch-up window, let pass.
    pub missed: u64,
    /// Occurrences another process had claimed already.
    pub taken: u64,
}

/// Most claims of one pass.
pub const MAX_CLAIMS: usize = 1000;

/// What one pass claims of one task (the same whatever keeps the tasks).
#[derive(Debug, PartialEq, Eq)]
pub struct Due {
    /// Occurrences older than the catch-up window, let pass.
    pub missed: u64,
    /// The occurrences to claim, oldest first, at most `room`.
    pub occurrences: Vec<i64>,
    /// The task's new `checked_until_ms`.
    pub checked: i64,
}

/// The occurrences of `task` to claim at `now`: those in `(max(checked_until, now - catch_up),
/// now]` (at most `room`, `room` > 0; a pass that hits the bound leaves the rest to the next),
/// the older ones let pass. `None` when its stored schedule is invalid (logged; left as is).
pub fn due(task: &Stored, tz: Tz, now: i64, catch_up_ms: i64, room: usize) -> Option<Due> {
    let occurrences = match Occurrences::new(&task.plan(), tz) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(id = task.id, error = %e, "scheduled tasks: invalid stored schedule");
            return None;
        }
    };
    let window_start = now.saturating_sub(catch_up_ms);
    let from = task.checked_until_ms.max(window_start.saturating_sub(1));
    let missed = occurrences
        .between(task.checked_until_ms, from, MAX_CLAIMS)
        .len() as u64;
    if missed > 0 {
        tracing::warn!(
            id = task.id,
            missed,
            "scheduled tasks: occurrences older than the catch-up window were not dispatched"
        );
    }
    let due = occurrences.between(from, now, room);
    let checked = if due.len() == room {
        due.last().copied().unwrap_or(now)
    } else {
        now
    };
    Some(Due {
        missed,
        occurrences: due,
        checked,
    })
}

/// In one transaction: locks every scheduled task due (`checked_until_ms < now`), claims its
/// occurrences in `(max(checked_until, now - catch_up), now]` (one row each, unique: an
/// occurrence claimed by anyone before is not claimed again), lets the older ones pass, and
/// advances `checked_until_ms` to `now`. The claims are committed before anything is sent.
pub async fn claim_due(
    c: &mut Client,
    tz: Tz,
    now: i64,
    catch_up_ms: i64,
) -> Result<Claimed, ScheduleError> {
    let tx = c.transaction().await?;
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM scheduled_tasks WHERE checked_until_ms < $1 \
                 ORDER BY id FOR UPDATE"
            ),
            &[&now],
        )
        .await?;
    let mut out = Claimed::default();
    for row in &rows {
        if out.claims.len() >= MAX_CLAIMS {
            // The rest on the next pass.
            break;
        }
        let task = match Stored::from_row(row) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "scheduled tasks: unreadable row skipped");
                continue;
            }
        };
        let room = MAX_CLAIMS.saturating_sub(out.claims.len());
        let Some(due) = due(&task, tz, now, catch_up_ms, room) else {
            continue;
        };
        out.missed += due.missed;
        for occurrence in due.occurrences {
            let request_id = request_id(task.id, occurrence);
            let inserted = tx
                .execute(
                    "INSERT INTO scheduled_task_runs (scheduled_task, occurrence_ms, request_id, \
                     status, claimed_ms) VALUES ($1, $2, $3, 'claimed', $4) ON CONFLICT DO NOTHING",
                    &[&task.id, &occurrence, &request_id, &now],
                )
                .await?;
            if inserted == 1 {
                out.claims.push(Claim {
                    task: task.clone(),
                    occurrence,
                    request_id,
                });
            } else {
                out.taken += 1;
            }
        }
        tx.execute(
            "UPDATE scheduled_tasks SET checked_until_ms = $2 WHERE id = $1",
            &[&task.id, &due.checked],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// The next occurrence after `now` over every scheduled task (to sleep until it).
pub async fn next_occurrence(c: &Client, tz: Tz, now: i64) -> Result<Option<i64>, ScheduleError> {
    let rows = c
        .query(&format!("SELECT {COLUMNS} FROM scheduled_tasks"), &[])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Stored::from_row(r).ok())
        .filter_map(|t| Occurrences::new(&t.plan(), tz).ok()?.next_after(now))
        .min())
}

/// Records the outcome of a claim.
pub async fn finish(
    c: &Client,
    claim: &Claim,
    status: &str,
    task_id: Option<&str>,
    detail: Option<&str>,
    now: i64,
) -> Result<(), ScheduleError> {
    c.execute(
        "UPDATE scheduled_task_runs SET status = $3, task_id = $4, detail = $5, answered_ms = $6 \
         WHERE scheduled_task = $1 AND occurrence_ms = $2",
        &[
            &claim.task.id,
            &claim.occurrence,
            &status,
            &task_id,
            &detail,
            &now,
        ],
    )
    .await?;
    if status == "dispatched" {
        c.execute(
            "UPDATE scheduled_tasks SET last_ran_ms = greatest(coalesce(last_ran_ms, $2), $2) \
             WHERE id = $1",
            &[&claim.task.id, &now],
        )
        .await?;
    }
    Ok(())
}

/// Claims left `claimed` (not answered) by a process that died between the claim and the
/// answer, with their scheduled tasks; counts one more attempt on each.
pub async fn unconfirmed(c: &Client) -> Result<Vec<Claim>, ScheduleError> {
    let rows = c
        .query(
            &format!(
                "UPDATE scheduled_task_runs r SET attempts = attempts + 1 FROM scheduled_tasks t \
                 WHERE r.status = 'claimed' AND t.id = r.scheduled_task \
                 RETURNING r.occurrence_ms, r.request_id, {}",
                COLUMNS
                    .split(", ")
                    .map(|col| format!("t.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[],
        )
        .await?;
    let mut claims = Vec::with_capacity(rows.len());
    for r in &rows {
        // The task's columns follow the two run columns.
        let id: i64 = r.get(2);
        let schedules = serde_json::from_str(r.get::<_, &str>(6)).unwrap_or_default();
        claims.push(Claim {
            occurrence: r.get(0),
            request_id: r.get(1),
            task: Stored {
                id,
                created_by: r.get(3),
                created_ms: r.get(4),
                task_request: r.get(5),
                schedules,
                start_from_ms: r.get(7),
                until_ms: r.get(8),
                except_dates: r.get(9),
                last_ran_ms: r.get(10),
                checked_until_ms: r.get(11),
            },
        });
    }
    claims.sort_by_key(|c| (c.task.id, c.occurrence));
    Ok(claims)
}

/// The id of a stored task state carrying `label` (evidence that RMF took the request).
pub async fn task_with_label(c: &Client, label: &str) -> Result<Option<String>, ScheduleError> {
    Ok(c.query_opt(
        "SELECT task_id FROM task_state WHERE labels @> ARRAY[$1::text] LIMIT 1",
        &[&label],
    )
    .await?
    .map(|r| r.get(0)))
}
