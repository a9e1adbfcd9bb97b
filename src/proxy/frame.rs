//! The wire format of the replication link (`{prefix}/_replicate`, a websocket):
//!
//! - server -> client, first message, text: [`Hello`] `{"protocol":"rmf-dash-replicate",
//!   "version":1,"epoch":"<id>"}`; the epoch names the serving process's hub (new at every
//!   start): sequence numbers are comparable only within one epoch; `"lineage":"<id>"` when the
//!   upstream is a main process with a store (the same across takeovers and restarts on it).
//! - client -> server, text: [`Request`] `{"op":"sub","room":R,"since":N?}` and
//!   `{"op":"unsub","room":R}`.
//! - server -> client, binary: one room change per message, [`encode`]d as
//!   `flags:u8 seq:u64 t:u64 sent_ms:u64 room_len:u16 room payload` (big-endian; flags bit 0 =
//!   has a value; the payload is the room's JSON bytes as the hub holds them, copied, never
//!   re-encoded).
//! - server -> client, text: `{"error": "...", "room": R}` for a refused request.
//!
//! Both directions are read within the JSON bounds ([`crate::json_limits`]): a request is
//! checked ([`parse_request`]: at most [`MAX_REQUEST`] bytes, `--max-json-depth`) before serde
//! reads it, and a change's value is checked ([`value_of`]: at most
//! [`MAX_DEPTH_CEILING`] levels, whatever the upstream's own bound) before the proxy keeps and
//! relays it; refusals are counted as `rmf_dash_json_refused_total{door="replicate"}`. The
//! decoding functions are pure (the fuzz target `replicate_frame` includes this file).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::hub::Meta;
use crate::json_limits::{self, Door, Limits, MAX_DEPTH_CEILING, Refusal};

pub const PROTOCOL: &str = "rmf-dash-replicate";
pub const VERSION: u32 = 1;
/// Bytes before the room name.
const HEADER: usize = 1 + 8 + 8 + 8 + 2;
/// Largest request a client may send (a room name is at most 512 bytes).
pub const MAX_REQUEST: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: String,
    pub version: u32,
    pub epoch: String,
    /// The store the upstream's state comes from (a main process with a store): across a new
    /// epoch of the same lineage (a takeover, a restart), sequence numbers and logical times
    /// continue, so what the client already holds is not taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Subscribe; the answer is the room's present state, then every change. `since`: the last
    /// seq of a stream room the client holds from this epoch (resume), if any.
    Sub {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    Unsub {
        room: String,
    },
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub error: String,
    pub room: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("room name is not UTF-8")]
    Room,
    #[error("frame flags {0:#x} unknown")]
    Flags(u8),
}

/// Why a request was refused (answered to the client).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Invalid(String),
}

/// The bounds of a request: [`MAX_REQUEST`] bytes, the process's depth bound.
pub fn request_limits() -> Limits {
    Limits {
        max_bytes: MAX_REQUEST,
        ..json_limits::limits()
    }
}

/// Reads a client's request within `limits`.
pub fn parse_request(text: &str, limits: &Limits) -> Result<Request, RequestError> {
    let text = json_limits::check(text.as_bytes(), limits).map_err(RequestError::Refused)?;
    serde_json::from_str(text).map_err(|e| match Refusal::of_serde(&e) {
        Some(r) => RequestError::Refused(r),
        None => RequestError::Invalid(e.to_string()),
    })
}

/// [`parse_request`] within [`request_limits`], a refusal counted and logged.
pub fn read_request(text: &str) -> Result<Request, RequestError> {
    parse_request(text, &request_limits()).inspect_err(|e| {
        if let RequestError::Refused(r) = e {
            json_limits::refused(Door::Replicate, r, &"a /_replicate client", "request");
        }
    })
}

/// The bounds of a relayed value: [`MAX_DEPTH_CEILING`] levels (what any upstream may have
/// accepted); its size is bounded by the link's largest message.
pub const VALUE_LIMITS: Limits = Limits {
    max_depth: MAX_DEPTH_CEILING,
    max_bytes: usize::MAX,
};

/// The value of a change as the hub keeps it, checked within `limits`: `None` for a change
/// without a value.
pub fn value_of(change: &Change<'_>, limits: &Limits) -> Result<Option<Arc<RawValue>>, Refusal> {
    let Some(bytes) = change.value else {
        return Ok(None);
    };
    let text = json_limits::check(bytes, limits)?;
    // Cannot fail: the check read the text as a `Value` would.
    let value = RawValue::from_string(text.to_string()).map_err(|e| Refusal::syntax(&e))?;
    Ok(Some(Arc::from(value)))
}

/// [`value_of`] within [`VALUE_LIMITS`], a refusal counted and logged.
pub fn read_value(change: &Change<'_>) -> Result<Option<Arc<RawValue>>, Refusal> {
    value_of(change, &VALUE_LIMITS).inspect_err(|r| {
        let what = format!("value of room {} from upstream", change.room);
        json_limits::refused(Door::Replicate, r, &"upstream", &what);
    })
}

/// One decoded change (borrowing the message).
#[derive(Debug, PartialEq, Eq)]
pub struct Change<'a> {
    pub room: &'a str,
    pub meta: Meta,
    /// The JSON bytes of the value; `None`: the room has no value (state) or a marker (stream).
    pub value: Option<&'a [u8]>,
}

/// Encodes one change (`room` is at most 512 bytes: the hub refuses longer names).
pub fn encode(room: &str, value: Option<&RawValue>, meta: Meta) -> Vec<u8> {
    let payload = value.map_or(&[][..], |v| v.get().as_bytes());
    let room = &room.as_bytes()[..room.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(HEADER + room.len() + payload.len());
    out.push(u8::from(value.is_some()));
    out.extend_from_slice(&meta.seq.to_be_bytes());
    out.extend_from_slice(&meta.t.to_be_bytes());
    out.extend_from_slice(&meta.sent_ms.to_be_bytes());
    out.extend_from_slice(&(room.len() as u16).to_be_bytes());
    out.extend_from_slice(room);
    out.extend_from_slice(payload);
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

pub fn decode(b: &[u8]) -> Result<Change<'_>, FrameError> {
    if b.len() < HEADER {
        return Err(FrameError::Short(b.len()));
    }
    let flags = b[0];
    if flags > 1 {
        return Err(FrameError::Flags(flags));
    }
    let room_len = u16::from_be_bytes([b[25], b[26]]) as usize;
    if b.len() < HEADER + room_len {
        return Err(FrameError::Short(b.len()));
    }
    let room = std::str::from_utf8(&b[HEADER..HEADER + room_len]).map_err(|_| FrameError::Room)?;
    Ok(Change {
        room,
        meta: Meta {
            seq: u64_at(b, 1),
            t: u64_at(b, 9),
            sent_ms: u64_at(b, 17),
        },
        value: (flags == 1).then(|| &b[HEADER + room_len..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_with_their_bytes_untouched() {
        let meta = Meta {
            seq: 42,
            t: 1_700_000_000_123,
            sent_ms: 9,
        };
        let raw = crate::hub::raw("{\"a\": 1.50,\"b\":[ ]}");
        let bytes = encode("/doors/d1/state", Some(&raw), meta);
        let c = decode(&bytes).expect("decode");
        assert_eq!(c.room, "/doors/d1/state");
        assert_eq!(c.meta, meta);
        assert_eq!(c.value, Some(&b"{\"a\": 1.50,\"b\":[ ]}"[..]));
        let none = encode("/alerts/requests", None, meta);
        assert_eq!(decode(&none).map(|c| c.value), Ok(None));
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(decode(&[1, 2, 3]), Err(FrameError::Short(3)));
        let mut b = encode(
            "/x",
            None,
            Meta {
                seq: 1,
                t: 1,
                sent_ms: 1,
            },
        );
        b[0] = 7;
        assert_eq!(decode(&b), Err(FrameError::Flags(7)));
        let mut b = encode(
            "/x",
            None,
            Meta {
                seq: 1,
                t: 1,
                sent_ms: 1,
            },
        );
        b[26] = 200;
        assert!(matches!(decode(&b), Err(FrameError::Short(_))));
        let mut b = encode(
            "/x",
            None,
            Meta {
                seq: 1,
                t: 1,
                sent_ms: 1,
            },
        );
        b[27] = 0xff;
        assert_eq!(decode(&b), Err(FrameError::Room));
    }

    #[test]
    fn requests_and_values_are_read_within_the_bounds() {
        let limits = Limits {
            max_depth: 3,
            max_bytes: 64,
        };
        assert_eq!(
            parse_request(r#"{"op":"unsub","room":"/a"}"#, &limits),
            Ok(Request::Unsub { room: "/a".into() })
        );
        let deep = r#"{"op":"sub","room":"/a","x":[[[]]]}"#;
        assert_eq!(
            parse_request(deep, &limits),
            Err(RequestError::Refused(Refusal::Depth { max: 3 }))
        );
        let long = format!(r#"{{"op":"sub","room":"{}"}}"#, "a".repeat(64));
        assert!(matches!(
            parse_request(&long, &limits),
            Err(RequestError::Refused(Refusal::Bytes { .. }))
        ));
        assert!(matches!(
            parse_request(r#"{"op":"sub""#, &limits),
            Err(RequestError::Refused(Refusal::Syntax { .. }))
        ));
        assert!(matches!(
            parse_request(r#"{"op":"drop","room":"/a"}"#, &limits),
            Err(RequestError::Invalid(_))
        ));

        let meta = Meta {
            seq: 1,
            t: 1,
            sent_ms: 1,
        };
        let value = |json: &str| {
            let bytes = encode("/r", Some(&crate::hub::raw(json)), meta);
            decode(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|c| value_of(&c, &limits).map_err(|e| e.to_string()))
                .map(|v| v.map(|v| v.get().to_string()))
        };
        assert_eq!(value("[[1]]"), Ok(Some("[[1]]".into())));
        assert_eq!(
            value("[[[[1]]]]"),
            Err("JSON nested deeper than 3 levels".into())
        );
        let none = encode("/r", None, meta);
        let c = decode(&none).expect("decode");
        assert!(matches!(value_of(&c, &limits), Ok(None)));
        let mut bad = encode("/r", Some(&crate::hub::raw("[1]")), meta);
        bad.truncate(bad.len() - 1);
        let c = decode(&bad).expect("decode");
        let e = value_of(&c, &limits).expect_err("truncated");
        assert_eq!(e.reason().as_str(), "syntax");
    }

    #[test]
    fn requests_are_tagged_json() {
        let r: Request =
            serde_json::from_str(r#"{"op":"sub","room":"/a","since":3}"#).expect("sub");
        assert_eq!(
            r,
            Request::Sub {
                room: "/a".into(),
                since: Some(3)
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"unsub","room":"/a"}"#).expect("unsub");
        assert_eq!(r, Request::Unsub { room: "/a".into() });
        assert!(serde_json::from_str::<Request>(r#"{"op":"drop","room":"/a"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Request::Sub {
                room: "/a".into(),
                since: None
            })
            .ok(),
            Some(r#"{"op":"sub","room":"/a"}"#.to_string())
        );
    }
}
