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

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::hub::Meta;

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
