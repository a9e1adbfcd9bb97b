//! The one extractor of every REST route that takes a JSON body ([`Body`]): the body is read up
//! to `--max-json-bytes` (a longer one is refused with 413 without being read further), checked
//! against `--max-json-depth` before serde reads it, and read into the route's type, answering
//! like FastAPI checks a pydantic body (422 `{"detail": [{type, loc, msg}]}`; any content
//! type). Refusals of the bounds are counted as `rmf_dash_json_refused_total{door="rest"}` and
//! logged with the client's address ([`crate::json_limits`]). The pure core is
//! [`decode`] (`body/decode.rs`, also the fuzz target `rest_body`).

mod decode;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::json;

pub use decode::{BodyError, decode, invalid};

use crate::json_limits::{self, Door, Reason};

/// A JSON body within the bounds, read into `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let limits = json_limits::limits();
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let (method, uri) = (req.method().clone(), req.uri().clone());
        // Counted and logged with the client's address and the route.
        let refused = |reason: Reason, e: &BodyError| {
            let peer = json_limits::peer_name(peer);
            let what = format!("body of {method} {}", uri.path());
            json_limits::refused_for(Door::Rest, reason, e, &peer, &what);
        };
        let bytes = read(req, limits.max_bytes).await.inspect_err(|e| {
            if let Rejection::Body(e) = e {
                refused(Reason::Bytes, e);
            }
        })?;
        decode(&bytes, &limits).map(Body).map_err(|e| {
            if let Some(reason) = e.json_reason() {
                refused(reason, &e);
            }
            Rejection::Body(e)
        })
    }
}

/// Why a body was not taken.
#[derive(Debug)]
pub enum Rejection {
    Body(BodyError),
    /// The body could not be read (the client went away mid-body).
    Unreadable(String),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            Rejection::Body(e @ BodyError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, e.detail())
            }
            Rejection::Body(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.detail()),
            Rejection::Unreadable(e) => (StatusCode::BAD_REQUEST, json!(e)),
        };
        (status, Json(json!({ "detail": detail }))).into_response()
    }
}

/// The declared length of a body, if any.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The bytes of a body of at most `max` bytes; a longer one is refused as soon as that shows
/// (from its `Content-Length`, or once `max` bytes have come).
async fn read(req: Request, max: usize) -> Result<Vec<u8>, Rejection> {
    let too_large = Rejection::Body(BodyError::TooLarge { max });
    if content_length(req.headers()).is_some_and(|n| n > max as u64) {
        return Err(too_large);
    }
    let mut stream = req.into_body().into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Rejection::Unreadable(e.to_string()))?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
