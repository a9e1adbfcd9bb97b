//! Dispensers and ingestors: `GET /dispensers`, `GET /ingestors` (`[{guid}]` of those heard
//! from, by guid), `GET /dispensers|ingestors/{guid}/state` (the latest
//! `{time, guid, mode, request_guid_queue, seconds_remaining}`) and `.../health`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ReadResult, room};
use crate::api::{App, AppState, AuthUser, read};
use crate::hub::Raw;

fn guids(app: &App, kind: &str) -> Vec<Value> {
    read::states(&app.hub, &format!("/{kind}/"), "/state")
        .into_iter()
        .map(|(guid, _)| json!({ "guid": guid }))
        .collect()
}

pub async fn get_dispensers(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    Json(guids(&app, "dispensers"))
}

pub async fn get_ingestors(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    Json(guids(&app, "ingestors"))
}

pub async fn get_dispenser_state(
    _: AuthUser,
    State(app): State<AppState>,
    Path(guid): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/dispensers/{guid}/state"), || {
        format!("no state of dispenser {guid}")
    })
}

pub async fn get_dispenser_health(
    _: AuthUser,
    State(app): State<AppState>,
    Path(guid): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/dispensers/{guid}/health"), || {
        format!("no health of dispenser {guid}")
    })
}

pub async fn get_ingestor_state(
    _: AuthUser,
    State(app): State<AppState>,
    Path(guid): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/ingestors/{guid}/state"), || {
        format!("no state of ingestor {guid}")
    })
}

pub async fn get_ingestor_health(
    _: AuthUser,
    State(app): State<AppState>,
    Path(guid): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/ingestors/{guid}/health"), || {
        format!("no health of ingestor {guid}")
    })
}
