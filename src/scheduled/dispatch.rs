//! The dispatch loop of scheduled tasks: claims due occurrences ([`ScheduleStore::claim_due`]:
//! one transaction with a store, one lock in memory) and sends each through the same path as
//! `POST /tasks/dispatch_task` ([`crate::api::commands::dispatch`]), then records RMF's answer on
//! the claim. It runs with a store and without (`--no-db`: the tasks in memory).
//!
//! Only the main process runs it, and only while it is the active one: it takes a
//! `watch::Receiver<bool>` ("am I active"; `serve` follows its leadership, always active without
//! a store) and does nothing while that says false.
//!
//! Exactly once: an occurrence is claimed by inserting its unique `(scheduled_task,
//! occurrence)` row in the transaction that advances the task's `checked_until_ms`; whoever
//! commits it sends it, nobody else ever does (two processes that both believe they are active
//! still claim each occurrence once). The claim is committed before the request is published
//! and its answer recorded after: a process that dies in between leaves the claim `claimed`.
//! When a process becomes active it first waits `resend_after` (for the task states of requests
//! RMF did take to arrive and be stored), then settles every such claim: a stored task state
//! carrying the occurrence's label (`scheduled_task=<id>@<occurrence>`) means RMF took it
//! (recorded `dispatched`, not sent again); otherwise it is sent again, with the same request
//! id and label (occurrences older than the catch-up window are recorded `missed` instead). The
//! one case that gives two tasks: RMF took the request but its task state had not reached the
//! store before the process died and did not arrive within `resend_after`. In memory nothing
//! outlives the process: there is nothing to settle, and no wait.

use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::clock::Clock;
use super::storage::ScheduleStore;
use super::store::Claim;
use crate::api::AppState;
use crate::api::commands::{DispatchTaskRequest, Reject};
use crate::error::chain;

/// Where the test hook `RMF_DASH_TEST_SCHEDULE_PAUSE` stops the dispatcher for good (to
/// `kill -9` it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// After committing claims, before sending them.
    AfterClaim,
    /// After RMF's answer (and its task state fed to the engine), before recording it.
    AfterAnswer,
}

impl Pause {
    pub fn parse(s: &str) -> Option<Pause> {
        match s {
            "after_claim" => Some(Pause::AfterClaim),
            "after_answer" => Some(Pause::AfterAnswer),
            _ => None,
        }
    }
}

/// How scheduled tasks are run.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The zone of schedules' local times and except dates (`--timezone`).
    pub tz: Tz,
    pub clock: Clock,
    /// Occurrences missed by more than this (the process was down or standby) are not sent.
    pub catch_up: Duration,
    /// Wait after becoming active before settling claims a dead process left unconfirmed.
    pub resend_after: Duration,
    /// Test hook.
    pub pause: Option<Pause>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            tz: Tz::UTC,
            clock: Clock::wall(),
            catch_up: Duration::from_secs(300),
            resend_after: Duration::from_secs(5),
            pause: None,
        }
    }
}

/// What the routes and the loop share.
pub struct Scheduling {
    pub config: ScheduleConfig,
    /// Where the scheduled tasks are kept.
    pub store: ScheduleStore,
    /// Wakes the loop (a scheduled task was created or changed).
    pub wake: Notify,
}

impl Scheduling {
    pub fn new(config: ScheduleConfig, store: ScheduleStore) -> Arc<Scheduling> {
        Arc::new(Scheduling {
            config,
            store,
            wake: Notify::new(),
        })
    }
}

/// The booking label of an occurrence.
pub fn occurrence_label(id: i64, occurrence: i64) -> String {
    format!("scheduled_task={id}@{}", super::rfc3339(occurrence))
}

/// Starts the loop. Abort the handle at shutdown: the loop and its sends in flight hold the app
/// (and with it the engine's feed).
pub fn spawn(app: AppState, active: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(app, active))
}

async fn pause_forever(at: &str) {
    tracing::warn!(at, "scheduled tasks: test hook paused the dispatcher");
    std::future::pending::<()>().await;
}

async fn run(app: AppState, mut active: watch::Receiver<bool>) {
    let s = app.scheduling.clone();
    let cfg = s.config.clone();
    let mut settled = false;
    // The sends in flight: aborted with the loop (at shutdown), so that nothing holds the app.
    let mut sending = tokio::task::JoinSet::new();
    tracing::info!(timezone = %cfg.tz, fake_clock = cfg.clock.is_fake(), in_memory = s.store.in_memory(), "scheduled tasks: dispatcher started");
    loop {
        while sending.try_join_next().is_some() {}
        if !*active.borrow_and_update() {
            // A later activation settles the claims left unconfirmed again.
            settled = false;
            tracing::info!("scheduled tasks: standby, not dispatching");
            if active.changed().await.is_err() {
                return;
            }
            continue;
        }
        if !settled {
            // Only a store can hold the claims of a dead process.
            if !s.store.in_memory() {
                tokio::time::sleep(cfg.resend_after).await;
            }
            if let Err(e) = settle(&app, &mut sending).await {
                tracing::warn!(error = %chain(&e), "scheduled tasks: settling unconfirmed claims failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            settled = true;
        }
        let next = match pass(&app, &mut sending).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "scheduled tasks: claiming failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Sleep until the next occurrence, a change, or a second at most.
        let wait = next.map_or(Duration::from_secs(1), |n| {
            cfg.clock
                .real(n - cfg.clock.now_ms())
                .min(Duration::from_secs(1))
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = s.wake.notified() => {}
            // A dropped sender leaves the last value for good.
            Ok(()) = active.changed() => {}
        }
    }
}

/// Claims what is due now and starts sending it; the next occurrence after now, if any.
async fn pass(
    app: &AppState,
    sending: &mut tokio::task::JoinSet<()>,
) -> Result<Option<i64>, super::ScheduleError> {
    let s = &app.scheduling;
    let cfg = &s.config;
    let now = cfg.clock.now_ms();
    let claimed = s
        .store
        .claim_due(cfg.tz, now, cfg.catch_up.as_millis() as i64)
        .await?;
    if claimed.taken > 0 {
        tracing::warn!(
            taken = claimed.taken,
            "scheduled tasks: occurrences already claimed by another process"
        );
    }
    if !claimed.claims.is_empty() && cfg.pause == Some(Pause::AfterClaim) {
        pause_forever("after_claim").await;
    }
    for claim in claimed.claims {
        sending.spawn(send(app.clone(), claim));
    }
    Ok(s.store.next_occurrence(cfg.tz, now).await.ok().flatten())
}

/// Settles the claims a dead process left `claimed` (see the module documentation).
async fn settle(
    app: &AppState,
    sending: &mut tokio::task::JoinSet<()>,
) -> Result<(), super::ScheduleError> {
    let store = &app.scheduling.store;
    let catch_up_ms = app.scheduling.config.catch_up.as_millis() as i64;
    let claims = store.unconfirmed().await?;
    let now = app.scheduling.config.clock.now_ms();
    for claim in claims {
        let label = occurrence_label(claim.task.id, claim.occurrence);
        if let Some(task_id) = store.task_with_label(&label).await? {
            tracing::info!(id = claim.task.id, %label, %task_id, "scheduled tasks: unconfirmed claim was taken by RMF; not sent again");
            store
                .finish(
                    &claim,
                    "dispatched",
                    Some(&task_id),
                    Some("confirmed after a restart from the stored task state"),
                    now,
                )
                .await?;
        } else if now - claim.occurrence > catch_up_ms {
            store
                .finish(
                    &claim,
                    "missed",
                    None,
                    Some("unconfirmed claim older than the catch-up window: not sent again"),
                    now,
                )
                .await?;
        } else {
            tracing::info!(id = claim.task.id, %label, "scheduled tasks: unconfirmed claim sent again");
            sending.spawn(send(app.clone(), claim));
        }
    }
    Ok(())
}

/// The request of an occurrence: the stored task request, its requester the creator (unless
/// set), request time now, and the occurrence's label added.
fn request_of(claim: &Claim, now: i64) -> Result<DispatchTaskRequest, String> {
    let mut request: Value = serde_json::from_str(&claim.task.task_request)
        .map_err(|e| format!("stored task request: {e}"))?;
    let Some(obj) = request.as_object_mut() else {
        return Err("stored task request is not an object".into());
    };
    obj.entry("requester")
        .or_insert_with(|| json!(claim.task.created_by));
    obj.insert("unix_millis_request_time".into(), json!(now));
    let label = occurrence_label(claim.task.id, claim.occurrence);
    match obj.get_mut("labels") {
        Some(Value::Array(labels)) => labels.push(json!(label)),
        _ => {
            obj.insert("labels".into(), json!([label]));
        }
    }
    let body = json!({"type": "dispatch_task_request", "request": request});
    serde_json::from_value(body).map_err(|e| format!("stored task request: {e}"))
}

/// How the dispatch of an occurrence ended: the status recorded on its run, the task id RMF
/// gave, and why when it failed.
type Outcome = (&'static str, Option<String>, Option<String>);

/// Whether the creator of a scheduled task may still submit it (users enforced only: see
/// [`crate::api::access::enforced`]); the outcome when not.
async fn permitted(
    app: &AppState,
    claim: &Claim,
    request: &DispatchTaskRequest,
) -> Option<Outcome> {
    let users = crate::api::access::enforced(app)?;
    let group = crate::access::groups::task_group(request.request.labels.as_deref());
    let allowed = match users.get(&claim.task.created_by).await {
        Ok(Some(mut info)) => {
            // --no-auth: the single local user may do everything (as on the routes).
            info.is_admin |= !app.auth.enabled();
            users.is_authorized(&info, &group, "task_submit").await
        }
        Ok(None) => Ok(false),
        Err(e) => Err(e),
    };
    match allowed {
        Ok(true) => None,
        Ok(false) => Some((
            "not_permitted",
            None,
            Some(format!(
                "user {} may no longer submit tasks in group {group:?}",
                claim.task.created_by
            )),
        )),
        Err(e) => {
            // The run's reason is shown to its creator: the store's chain only in the log.
            tracing::warn!(run = claim.task.id, error = %chain(&e), "the permission check of a scheduled run failed");
            Some((
                "failed",
                None,
                Some("the permission check could not be made (store unavailable)".into()),
            ))
        }
    }
}

/// Sends one claimed occurrence as its creator.
async fn dispatch(app: &AppState, claim: &Claim) -> Outcome {
    let request = match request_of(claim, app.scheduling.config.clock.now_ms()) {
        Ok(r) => r,
        Err(e) => return ("failed", None, Some(e)),
    };
    if let Some(refused) = permitted(app, claim, &request).await {
        return refused;
    }
    let answer = crate::api::commands::dispatch(
        app,
        &claim.task.created_by,
        &request,
        Some(&claim.request_id),
    )
    .await;
    match answer {
        Ok((status, _, value)) if status.is_success() => {
            if app.scheduling.config.pause == Some(Pause::AfterAnswer) {
                pause_forever("after_answer").await;
            }
            let task_id = value
                .pointer("/state/booking/id")
                .and_then(Value::as_str)
                .map(str::to_string);
            ("dispatched", task_id, None)
        }
        Ok((_, text, _)) => ("failed", None, Some(text)),
        Err(Reject(status, detail)) => {
            let status = if status == axum::http::StatusCode::GATEWAY_TIMEOUT {
                "unanswered"
            } else {
                "failed"
            };
            (status, None, Some(detail.to_string()))
        }
    }
}

/// Sends one claimed occurrence and records the outcome.
async fn send(app: AppState, claim: Claim) {
    let (status, task_id, detail) = dispatch(&app, &claim).await;
    let label = occurrence_label(claim.task.id, claim.occurrence);
    if status == "dispatched" {
        tracing::info!(id = claim.task.id, %label, task_id = task_id.as_deref().unwrap_or_default(), "scheduled task dispatched");
    } else {
        tracing::warn!(id = claim.task.id, %label, status, detail = detail.as_deref().unwrap_or_default(), "scheduled task not dispatched");
    }
    let now = app.scheduling.config.clock.now_ms();
    let recorded = app
        .scheduling
        .store
        .finish(&claim, status, task_id.as_deref(), detail.as_deref(), now)
        .await;
    if let Err(e) = recorded {
        // Left `claimed`: the next activation settles it from the stored task state.
        tracing::warn!(id = claim.task.id, %label, error = %chain(&e), "scheduled tasks: outcome not recorded");
    }
}
