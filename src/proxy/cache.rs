//! REST reads a proxy answers from its own hub: the routes whose answer is exactly the present
//! value of one state room named like the path (`GET /doors/{name}/state` is room
//! `/doors/{name}/state`, ...; see [`room_of`]), when that room is followed upstream (a local
//! client subscribes to it), the link is up and the room has a value. The answer is then the
//! same bytes the main process would answer. Anything else is forwarded ([`super::forward`]),
//! and so is a read of a room restricted by a rule (`--room-permission`): the main process
//! checks the reader's permission.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Proxy;
use crate::access::token::Auth;

/// Reads answered from the cache.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    pub hits: AtomicU64,
}

/// The state room a read route answers with, if the path is one of them (percent-decoded).
pub fn room_of(path: &str) -> Option<String> {
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?
        .into_owned();
    if path == "/building_map" {
        return Some(path);
    }
    let segments: Vec<&str> = path.split('/').collect();
    let ok = match segments.as_slice() {
        [
            "",
            "doors" | "lifts" | "dispensers" | "ingestors",
            name,
            "state" | "health",
        ] => !name.is_empty(),
        ["", "fleets", name, "state"] => !name.is_empty(),
        ["", "robots", fleet, robot, "health"] => !fleet.is_empty() && !robot.is_empty(),
        _ => false,
    };
    ok.then_some(path)
}

/// The answer from the hub, or `None` to forward. A token is needed as for the main process's
/// route (401 otherwise).
pub fn answer(
    proxy: &Proxy,
    method: &Method,
    path: &str,
    query: Option<&str>,
    authorization: Option<&str>,
) -> Option<Response> {
    if method != Method::GET || query.is_some() || !proxy.link.connected.load(Ordering::Relaxed) {
        return None;
    }
    let room = room_of(path)?;
    let restricted = proxy
        .sockets
        .room_access()
        .is_some_and(|a| a.action_for(&room).is_some());
    if restricted || !proxy.hub.has_subscribers(&room) {
        return None;
    }
    let (_, value) = proxy.hub.get(&room)?;
    let value = value?;
    if let Err(e) = proxy.auth.verify(Auth::bearer(authorization)) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "detail": e.to_string() })),
            )
                .into_response(),
        );
    }
    proxy.cache.hits.fetch_add(1, Ordering::Relaxed);
    let mut response = value.get().to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_room_reads_map_to_rooms() {
        assert_eq!(
            room_of("/doors/coe%20door/state").as_deref(),
            Some("/doors/coe door/state")
        );
        assert_eq!(
            room_of("/lifts/l1/health").as_deref(),
            Some("/lifts/l1/health")
        );
        assert_eq!(
            room_of("/robots/f/r/health").as_deref(),
            Some("/robots/f/r/health")
        );
        assert_eq!(room_of("/building_map").as_deref(), Some("/building_map"));
        assert_eq!(
            room_of("/fleets/f/state").as_deref(),
            Some("/fleets/f/state")
        );
        for other in [
            "/doors",
            "/doors//state",
            "/fleets/f/log",
            "/robots/f/r/task",
            "/tasks/t/state",
            "/doors/a/b/state",
            "/doors/%ff/state",
        ] {
            assert_eq!(room_of(other), None, "{other}");
        }
    }
}
