//! Doors: `GET /doors` (the doors of the building map), `GET /doors/{door_name}/state` (the
//! latest DoorState `{door_time: {sec, nanosec}, door_name, current_mode: {value}}`),
//! `GET /doors/{door_name}/health` (`{id_, health_status, health_message}`).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{ReadResult, room};
use crate::api::{AppState, AuthUser, read};
use crate::hub::Raw;

/// rmf-web's shape: the map's `Door` messages of every level, in level order, as one list.
pub async fn get_doors(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    Json(read::map_doors(&app.hub))
}

pub async fn get_door_state(
    _: AuthUser,
    State(app): State<AppState>,
    Path(door_name): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/doors/{door_name}/state"), || {
        format!("no state of door {door_name}")
    })
}

pub async fn get_door_health(
    _: AuthUser,
    State(app): State<AppState>,
    Path(door_name): Path<String>,
) -> ReadResult<Json<Raw>> {
    room(&app, &format!("/doors/{door_name}/health"), || {
        format!("no health of door {door_name}")
    })
}
