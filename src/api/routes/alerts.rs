//! Alerts: `GET /alerts/request/{alert_id}`, `GET /alerts/request/{alert_id}/response`,
//! `GET /alerts/requests/task/{task_id}?unresponded=true`, `GET /alerts/unresponded_requests`:
//! rmf-web's `AlertRequest` `{id, unix_millis_alert_time, title, subtitle, message, display,
//! tier, responses_available, alert_parameters, task_id}` and `AlertResponse`
//! `{id, unix_millis_response_time, response}`. An alert "expects a response" when it has
//! `responses_available`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{ReadResult, found};
use crate::api::query::Params;
use crate::api::read::Alerts;
use crate::api::{App, AppState, AuthUser};
use crate::store::history::AlertFilter;

/// The alerts `filter` selects: the store's (when there is one) and the hub's recent ones.
async fn alerts(app: &App, filter: AlertFilter<'_>) -> Alerts {
    super::stored_now(app).await;
    let stored = match &app.history {
        Some(h) => h.alerts(filter).await.unwrap_or_else(|e| {
            tracing::warn!(error = %crate::error::chain(&e), "alerts answered from memory");
            Vec::new()
        }),
        None => Vec::new(),
    };
    Alerts::new(&app.hub, stored)
}

pub async fn get_alert(
    _: AuthUser,
    State(app): State<AppState>,
    Path(alert_id): Path<String>,
) -> ReadResult<Json<Value>> {
    let filter = AlertFilter {
        id: Some(&alert_id),
        ..AlertFilter::default()
    };
    found(alerts(&app, filter).await.request(&alert_id), || {
        format!("Alert with ID {alert_id} does not exists")
    })
    .map(Json)
}

pub async fn get_alert_response(
    _: AuthUser,
    State(app): State<AppState>,
    Path(alert_id): Path<String>,
) -> ReadResult<Json<Value>> {
    let filter = AlertFilter {
        id: Some(&alert_id),
        ..AlertFilter::default()
    };
    found(alerts(&app, filter).await.response(&alert_id), || {
        format!("Response to alert with ID {alert_id} does not exists")
    })
    .map(Json)
}

pub async fn get_alerts_of_task(
    _: AuthUser,
    State(app): State<AppState>,
    Path(task_id): Path<String>,
    params: Params,
) -> ReadResult<Json<Vec<Value>>> {
    let unresponded = params.bool("unresponded", true)?;
    let filter = AlertFilter {
        task_id: Some(&task_id),
        unresponded,
        ..AlertFilter::default()
    };
    Ok(Json(
        alerts(&app, filter).await.of_task(&task_id, unresponded),
    ))
}

pub async fn get_unresponded_alerts(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    let filter = AlertFilter {
        unresponded: true,
        ..AlertFilter::default()
    };
    Json(alerts(&app, filter).await.unresponded_all())
}
