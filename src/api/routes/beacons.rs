//! Beacons: `GET /beacons` (the latest `{id, online, category, activated, level}` of every
//! beacon, by id) and `GET /beacons/{beacon_id}`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{ReadResult, found};
use crate::api::{AppState, AuthUser, read};

pub async fn get_beacons(_: AuthUser, State(app): State<AppState>) -> Json<Vec<Value>> {
    Json(read::beacons(&app.hub))
}

pub async fn get_beacon(
    _: AuthUser,
    State(app): State<AppState>,
    Path(beacon_id): Path<String>,
) -> ReadResult<Json<Value>> {
    found(read::beacon(&app.hub, &beacon_id), || {
        format!("Beacon with ID {beacon_id} not found")
    })
    .map(Json)
}
