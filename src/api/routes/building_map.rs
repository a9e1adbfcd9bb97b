//! The building: `GET /building_map` (the map, each image's `data` replaced by its URL),
//! `GET /building_map/images/{level}/{image}` (that image's bytes, with the content type of its
//! encoding) and `GET /building_map/previous_fire_alarm_trigger` (`{unix_millis_time,
//! trigger}`).
//!
//! Images need no token: dashboards load them by URL (an `<img>` or a texture loader sends no
//! `Authorization` header), as rmf-web serves them from its static cache.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ReadResult, found, room};
use crate::api::{AppState, AuthUser, read};
use crate::hub::Raw;

pub async fn get_building_map(_: AuthUser, State(app): State<AppState>) -> ReadResult<Json<Raw>> {
    room(&app, "/building_map", || "no building map received".into())
}

/// The MIME type of a `rmf_building_map_msgs/AffineImage` encoding.
pub fn content_type(encoding: &str) -> &'static str {
    match encoding.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

pub async fn get_image(
    State(app): State<AppState>,
    Path((level, image)): Path<(String, String)>,
) -> ReadResult<Response> {
    let image = found(read::map_image(&app.map_images, &level, &image), || {
        format!("no image {image} on level {level} of the building map")
    })?;
    Ok((
        [(header::CONTENT_TYPE, content_type(&image.encoding))],
        image.data.to_vec(),
    )
        .into_response())
}

pub async fn get_previous_fire_alarm_trigger(
    _: AuthUser,
    State(app): State<AppState>,
) -> ReadResult<Json<Raw>> {
    found(read::fire_alarm_trigger(&app.hub), || {
        "previous fire alarm trigger not available".into()
    })
    .map(Json)
}
