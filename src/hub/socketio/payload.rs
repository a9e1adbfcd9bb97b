//! socket.io payloads read within the JSON bounds: [`Checked`] is socketioxide's `TryData`
//! with the bounds check of [`crate::json_limits`] first (size, nesting depth), so a payload
//! over them is refused (counted as `rmf_dash_json_refused_total{door="socketio"}` and logged
//! with the client's address) before serde reads it. The handler gets the refusal as its data
//! error and answers it as any invalid request.
//!
//! socketioxide keeps an event's arguments as text and parses them only when a handler's
//! extractor asks, so this check runs before any parse of the payload. The size of a message
//! is also bounded by engineioxide: `max_payload` (set from `--max-json-bytes`) for HTTP
//! long-polling; over a websocket engineioxide reads messages up to its own fixed bound (64 MiB,
//! not configurable) and this check refuses what is over `--max-json-bytes`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use serde::de::DeserializeOwned;
use socketioxide::adapter::Adapter;
use socketioxide::extract::TryData;
use socketioxide::handler::{FromConnectParts, FromMessageParts, Value};
use socketioxide::socket::Socket;
use thiserror::Error;

use crate::json_limits::{self, Door, Refusal};

/// Why a payload was not taken (answered to the client as an invalid request).
#[derive(Debug, Error)]
pub enum PayloadError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Invalid(String),
}

/// The data of an event (or the auth of a connection) read into `T` within the JSON bounds.
pub struct Checked<T>(pub Result<T, PayloadError>);

/// The address of a socket's client.
fn peer_of<A: Adapter>(s: &Socket<A>) -> String {
    let peer = s.req_parts().extensions.get::<ConnectInfo<SocketAddr>>();
    json_limits::peer_name(peer.map(|c| c.0))
}

/// The text of a payload, if it is one.
fn text_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).map(|s| s.as_str())
}

/// Checks a payload's text against the bounds; a refusal is counted and logged.
fn bounded<A: Adapter>(s: &Socket<A>, text: Option<&str>, what: &str) -> Result<(), PayloadError> {
    let Some(text) = text else { return Ok(()) };
    json_limits::check(text.as_bytes(), &json_limits::limits())
        .map(drop)
        .map_err(|r| refuse(s, r, what))
}

fn refuse<A: Adapter>(s: &Socket<A>, r: Refusal, what: &str) -> PayloadError {
    json_limits::refused(Door::Socketio, &r, &peer_of(s), what);
    PayloadError::Refused(r)
}

/// A data error of socketioxide's: a syntax error is a refusal (counted), anything else the
/// request's own error.
fn data_error<A: Adapter>(
    s: &Socket<A>,
    text: Option<&str>,
    e: impl std::fmt::Display,
    what: &str,
) -> PayloadError {
    let syntax = text
        .and_then(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).err())
        .and_then(|e| Refusal::of_serde(&e));
    match syntax {
        Some(r) => refuse(s, r, what),
        None => PayloadError::Invalid(e.to_string()),
    }
}

impl<A: Adapter, T: DeserializeOwned> FromMessageParts<A> for Checked<T> {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut Value,
        ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        const WHAT: &str = "socket.io event";
        if let Err(e) = bounded(s, text_of(Some(v)), WHAT) {
            return Ok(Checked(Err(e)));
        }
        let TryData(data) = TryData::<T>::from_message_parts(s, v, ack)?;
        Ok(Checked(
            data.map_err(|e| data_error(s, text_of(Some(v)), e, WHAT)),
        ))
    }
}

impl<A: Adapter, T: DeserializeOwned> FromConnectParts<A> for Checked<T> {
    type Error = Infallible;

    fn from_connect_parts(s: &Arc<Socket<A>>, auth: &Option<Value>) -> Result<Self, Infallible> {
        const WHAT: &str = "socket.io connect payload";
        if let Err(e) = bounded(s, text_of(auth.as_ref()), WHAT) {
            return Ok(Checked(Err(e)));
        }
        let TryData(data) = TryData::<T>::from_connect_parts(s, auth)?;
        Ok(Checked(data.map_err(|e| {
            data_error(s, text_of(auth.as_ref()), e, WHAT)
        })))
    }
}
