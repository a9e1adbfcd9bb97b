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
use crate::api::{AppState, AuthUser, read};

pub async fn get_alert(
    _: AuthUser,
    State(app): State<AppState>,
    Path(alert_id): Path<String>,
) -> ReadResult<Json<Value>> {
    found(read::alert_request(&app.hub, &alert_id), || {
        format!("Alert with ID {alert_id} does not exists")
    })
    .map(Json)
}

pub async fn get_alert_response(
    _: AuthUser,
    State(app): State<AppState>,
    Path(alert_id): Path<String>,
) -> ReadResult<Json<Value>> {
    found(read::alert_response(&app.hub, &alert_id), || {
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
    Ok(Json(read::alerts_of_task(&app.hub, &task_id, unresponded)))
}

pub async fn get_unresponded_alerts(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    Json(read::unresponded_alerts(&app.hub))
}
