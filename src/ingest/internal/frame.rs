//! One `/_internal` text frame to the engine inputs it carries, or the reason it is dropped: a
//! pure function of the frame's text and the bounds ([`frame_inputs`]), shared by the
//! connection loop and the fuzz target `internal_frame` (which includes this file).
//!
//! The frame is first checked against the JSON bounds ([`crate::json_limits::check`]: size,
//! nesting depth), so that nothing deeper than the bound is stored or relayed, and then read
//! once by serde: its shape here, its `data` by the input views ([`inputs`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use rmf_dash_dataflows::model::input::{Input, InputError, Names, inputs};
use rmf_dash_dataflows::model::{JsonKind, Record};

use crate::json_limits::{Limits, Reason, Refusal, check};

/// The names a connection interns at most.
const NAMES_PER_CONNECTION: usize = 65_536;

/// Why a frame was dropped (logged; the frame itself never is).
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("not a JSON object")]
    NotObject,
    #[error("not a frame {{\"type\", \"data\"}}: {0}")]
    Malformed(String),
    #[error("missing `type`")]
    MissingType,
    #[error("unknown type `{0}`")]
    UnknownType(String),
    #[error("missing `data`")]
    MissingData,
    #[error("`data` is not a JSON object")]
    DataNotObject,
    /// The input's error is part of this message, not a `source()`: the log reads
    /// `invalid task_state_update: missing field ...` as one phrase.
    #[error("invalid {0}")]
    Rejected(InputError),
    #[error("binary frame ({0} bytes)")]
    Binary(usize),
}

impl FrameError {
    /// What `rmf_dash_json_refused_total` counts this as, if the frame was not a JSON document
    /// within the bounds (a valid document of the wrong shape is not a JSON refusal).
    pub fn json_reason(&self) -> Option<Reason> {
        match self {
            FrameError::Refused(r) => Some(r.reason()),
            _ => None,
        }
    }
}

/// A frame as sent by fleet adapters; other fields are ignored.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow, default)]
    type_: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The engine inputs of one text frame, decoded once here (the feeder takes them as they are).
/// Names are interned in `names` (one per connection, reset when it grows past
/// [`NAMES_PER_CONNECTION`]).
pub fn frame_inputs(
    text: &str,
    limits: &Limits,
    names: &mut Names,
) -> Result<Vec<Input>, FrameError> {
    if names.len() > NAMES_PER_CONNECTION {
        *names = Names::default();
    }
    inputs(&parse_frame(text, limits)?, 0, names).map_err(FrameError::Rejected)
}

/// The record of one text frame, checked as the engine will read it: its bounds and shape
/// here, its data by [`frame_inputs`].
pub fn parse_frame(text: &str, limits: &Limits) -> Result<Record, FrameError> {
    let text = check(text.as_bytes(), limits).map_err(FrameError::Refused)?;
    let not_json = |e: serde_json::Error| match Refusal::of_serde(&e) {
        Some(r) => FrameError::Refused(r),
        None => FrameError::Malformed(e.to_string()),
    };
    // Checked first: serde would also take an array `[type, data]` for the struct.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => FrameError::NotObject,
            Err(e) => not_json(e),
        });
    }
    let frame: Incoming = serde_json::from_str(text).map_err(not_json)?;
    let type_ = frame.type_.ok_or(FrameError::MissingType)?;
    let kind = JsonKind::parse(&type_)
        .ok_or_else(|| FrameError::UnknownType(clip(&type_, 64).to_string()))?;
    let data = frame.data.ok_or(FrameError::MissingData)?.get();
    if !data.starts_with('{') {
        return Err(FrameError::DataNotObject);
    }
    Ok(Record::Json {
        kind,
        data: Arc::from(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 8,
        max_bytes: 4096,
    };

    fn reason(text: &str) -> String {
        match frame_inputs(text, &LIMITS, &mut Names::default()) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_valid_frame_keeps_its_data_text_as_received() {
        let text = r#"{"type":"fleet_state_update","data": {"name":"f1", "robots":{}} }"#;
        match parse_frame(text, &LIMITS) {
            Ok(Record::Json { kind, data }) => {
                assert_eq!(kind, JsonKind::FleetStateUpdate);
                assert_eq!(&*data, r#"{"name":"f1", "robots":{}}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_is_decoded_once_into_its_inputs_with_names_interned() {
        let text = r#"{"type":"fleet_state_update","data":{"name":"f1","robots":{
            "r1":{"name":"r1","status":"idle","location":{"map":"L1","x":1,"y":2,"yaw":0}},
            "r2":{"name":"r2","status":"idle","location":{"map":"L1","x":3,"y":4,"yaw":0}}}}}"#;
        let mut names = Names::default();
        let first = frame_inputs(text, &LIMITS, &mut names).expect("valid");
        // The fleet's own state and one sample per robot.
        assert_eq!(first.len(), 3);
        let kept = names.len();
        let again = frame_inputs(text, &LIMITS, &mut names).expect("valid");
        assert_eq!(again, first);
        assert_eq!(names.len(), kept, "names are interned, not added again");
    }

    #[test]
    fn every_kind_of_bad_frame_has_its_reason() {
        assert!(reason("{\"type\":").starts_with("not JSON: "));
        assert!(reason("hello").starts_with("not JSON: "));
        assert_eq!(reason("[1, 2]"), "not a JSON object");
        assert_eq!(
            reason(r#"["fleet_state_update", {"name": "f"}]"#),
            "not a JSON object"
        );
        assert_eq!(reason("\"fleet_state_update\""), "not a JSON object");
        assert_eq!(reason("42"), "not a JSON object");
        assert!(reason(r#"{"type": 5, "data": {}}"#).starts_with("not a frame "));
        assert_eq!(reason(r#"{"data": {"name": "f"}}"#), "missing `type`");
        assert_eq!(
            reason(r#"{"type": "door_state", "data": {}}"#),
            "unknown type `door_state`"
        );
        assert_eq!(
            reason(r#"{"type": "fleet_state_update"}"#),
            "missing `data`"
        );
        assert_eq!(
            reason(r#"{"type": "fleet_state_update", "data": null}"#),
            "missing `data`"
        );
        assert_eq!(
            reason(r#"{"type": "fleet_state_update", "data": [1]}"#),
            "`data` is not a JSON object"
        );
        assert!(
            reason(r#"{"type": "fleet_state_update", "data": {"robots": {}}}"#)
                .starts_with("invalid fleet_state_update: missing field `name`"),
            "{}",
            reason(r#"{"type": "fleet_state_update", "data": {"robots": {}}}"#)
        );
        assert_eq!(
            reason(r#"{"type": "task_state_update", "data": {"booking": {"id": ""}}}"#),
            "invalid task_state_update: empty booking.id"
        );
        let long = format!(r#"{{"type": "{}", "data": {{}}}}"#, "x".repeat(1000));
        assert_eq!(reason(&long), format!("unknown type `{}`", "x".repeat(64)));
    }

    #[test]
    fn frames_over_the_bounds_are_refused_before_serde_reads_them() {
        let at = |depth: usize| {
            format!(
                r#"{{"type":"task_state_update","data":{{"booking":{{"id":"t"}},"detail":{}{}}}}}"#,
                "[".repeat(depth - 2),
                "]".repeat(depth - 2)
            )
        };
        assert_eq!(reason(&at(LIMITS.max_depth)), "ok");
        let deep = frame_inputs(&at(LIMITS.max_depth + 1), &LIMITS, &mut Names::default())
            .expect_err("too deep");
        assert_eq!(deep.json_reason(), Some(Reason::Depth));
        assert_eq!(deep.to_string(), "JSON nested deeper than 8 levels");
        let big = format!(r#"{{"type":"x","data":{{"a":"{}"}}}}"#, "x".repeat(4096));
        let e = parse_frame(&big, &LIMITS).expect_err("too big");
        assert_eq!(e.json_reason(), Some(Reason::Bytes));
        let e = parse_frame("{\"type\":", &LIMITS).expect_err("not JSON");
        assert_eq!(e.json_reason(), Some(Reason::Syntax));
        let e = parse_frame(r#"{"type":5,"data":{}}"#, &LIMITS).expect_err("shape");
        assert_eq!(e.json_reason(), None);
    }

    #[test]
    fn reasons_are_clipped_at_a_character_boundary() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }
}
