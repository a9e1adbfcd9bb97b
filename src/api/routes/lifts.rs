//! Lifts: `GET /lifts` (the lifts of the building map), `GET /lifts/{lift_name}/state` (the
//! latest LiftState, every field of the message, enums as integers),
//! `GET /lifts/{lift_name}/health` (`{id_, health_status, health_message}`).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{ReadResult, room};
use crate::api::{AppState, AuthUser, read};
use crate::hub::Raw;

/// rmf-web's shape: the map's `Lift` messages.
pub async fn get_lifts(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    Json(read::map_lifts(&app.hub))
}

pub async fn get_lift_state(
    _: AuthUser,
    State(app): State<AppState>,
    Path(lift_name): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/lifts/{lift_name}/state"), || {
        format!("no state of lift {lift_name}")
    })
}

pub async fn get_lift_health(
    _: AuthUser,
    State(app): State<AppState>,
    Path(lift_name): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/lifts/{lift_name}/health"), || {
        format!("no health of lift {lift_name}")
    })
}
