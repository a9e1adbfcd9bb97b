//! The pure core of the REST body extractor: a body's bytes to the route's type, within the
//! JSON bounds, or the error FastAPI would answer (422 `{"detail": [{type, loc, msg}]}`, 413 for
//! a body over the size bound). No HTTP here: the fuzz target `rest_body` includes this file.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use thiserror::Error;

use crate::json_limits::{self, Limits, Reason, Refusal};

/// Why a body was not accepted.
#[derive(Debug, Error)]
pub enum BodyError {
    /// Over the size bound (413).
    #[error("request body over {max} bytes (--max-json-bytes)")]
    TooLarge { max: usize },
    /// Not JSON within the bounds (422, `json_invalid`, with FastAPI's item).
    #[error("{refusal}")]
    Refused { refusal: Refusal, item: Value },
    /// Valid JSON that is not what the route takes (422, FastAPI's items).
    #[error("invalid body")]
    Invalid(Vec<Value>),
}

impl BodyError {
    /// What `rmf_dash_json_refused_total` counts this as, if the body was not a JSON document
    /// within the bounds.
    pub fn json_reason(&self) -> Option<Reason> {
        match self {
            BodyError::TooLarge { .. } => Some(Reason::Bytes),
            BodyError::Refused { refusal, .. } => Some(refusal.reason()),
            BodyError::Invalid(_) => None,
        }
    }

    /// FastAPI's `detail`: a string (413) or a list of validation errors (422).
    pub fn detail(&self) -> Value {
        match self {
            BodyError::TooLarge { .. } => Value::String(self.to_string()),
            BodyError::Refused { item, .. } => json!([item]),
            BodyError::Invalid(items) => Value::Array(items.clone()),
        }
    }
}

/// A refusal of the bounds check, its message naming the flag that sets the bound.
fn refused(refusal: Refusal) -> BodyError {
    let (loc, msg) = match &refusal {
        Refusal::Depth { .. } => (vec![json!("body")], format!("{refusal} (--max-json-depth)")),
        Refusal::Bytes { .. } => (vec![json!("body")], format!("{refusal} (--max-json-bytes)")),
        Refusal::Utf8 { at } => (
            vec![json!("body"), json!(at)],
            format!("JSON decode error: {refusal}"),
        ),
        Refusal::Syntax { error, column } => (
            vec![json!("body"), json!(column)],
            format!("JSON decode error: {error}"),
        ),
    };
    let item = invalid("json_invalid", loc, msg);
    BodyError::Refused { refusal, item }
}

/// One FastAPI validation error item.
pub fn invalid(kind: &str, loc: Vec<Value>, msg: impl Into<String>) -> Value {
    json!({"type": kind, "loc": loc, "msg": msg.into()})
}

/// The name inside the backquotes of a serde message like "missing field `mode`".
fn quoted(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// Parses a JSON body into `T` within `limits`, or the answer naming where it is wrong.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<T, BodyError> {
    if bytes.len() > limits.max_bytes {
        return Err(BodyError::TooLarge {
            max: limits.max_bytes,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let missing = invalid("missing", vec![json!("body")], "Field required");
        return Err(BodyError::Invalid(vec![missing]));
    }
    let text = json_limits::check(bytes, limits).map_err(refused)?;
    // Cannot fail: the check read the text as a `Value` would.
    let value: Value = serde_json::from_str(text).map_err(|e| refused(Refusal::syntax(&e)))?;
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| BodyError::Invalid(vec![shape(&e)]))
}

/// The FastAPI item of a body that is JSON but not of the route's shape.
fn shape(e: &serde_path_to_error::Error<serde_json::Error>) -> Value {
    let mut loc = vec![json!("body")];
    for segment in e.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
            serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
            serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let msg = e.inner().to_string();
    if msg.starts_with("missing field") {
        loc.extend(quoted(&msg).map(|f| json!(f)));
        invalid("missing", loc, "Field required")
    } else if msg.starts_with("unknown field") {
        // The path already ends with the unknown field (unlike a missing one).
        let field = quoted(&msg).map(|f| json!(f));
        if field.is_some() && loc.last() != field.as_ref() {
            loc.extend(field);
        }
        invalid("extra_forbidden", loc, "Extra inputs are not permitted")
    } else if msg.starts_with("unknown variant") {
        invalid("enum", loc, msg)
    } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        invalid("type_error", loc, msg)
    } else {
        invalid("value_error", loc, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 4,
        max_bytes: 100,
    };

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Door {
        #[allow(dead_code)]
        mode: u32,
    }

    fn detail<T: DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> Value {
        decode::<T>(bytes, &LIMITS).expect_err("refused").detail()
    }

    #[test]
    fn bodies_over_the_bounds_are_refused_with_the_flag_named() {
        assert!(decode::<Value>(b"[[[[1]]]]", &LIMITS).is_ok());
        assert_eq!(
            detail::<Value>(b"[[[[[1]]]]]"),
            json!([{"type": "json_invalid", "loc": ["body"],
                    "msg": "JSON nested deeper than 4 levels (--max-json-depth)"}])
        );
        let big = vec![b' '; 101];
        let e = decode::<Value>(&big, &LIMITS).expect_err("too large");
        assert_eq!(e.json_reason(), Some(Reason::Bytes));
        assert_eq!(
            e.detail(),
            json!("request body over 100 bytes (--max-json-bytes)")
        );
        let e = decode::<Value>(b"[\"\xff\"]", &LIMITS).expect_err("not UTF-8");
        assert_eq!(e.json_reason(), Some(Reason::Utf8));
        let e = decode::<Value>(b"{", &LIMITS).expect_err("syntax");
        assert_eq!(e.json_reason(), Some(Reason::Syntax));
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_fastapi_items_not_refusals() {
        let e = decode::<Door>(br#"{"mode":"open"}"#, &LIMITS).expect_err("type");
        assert_eq!(e.json_reason(), None);
        assert_eq!(
            e.detail(),
            json!([{"type": "type_error", "loc": ["body", "mode"],
                    "msg": "invalid type: string \"open\", expected u32"}])
        );
        assert_eq!(
            detail::<Door>(br#"{"mode":1,"x":2}"#),
            json!([{"type": "extra_forbidden", "loc": ["body", "x"],
                    "msg": "Extra inputs are not permitted"}])
        );
        assert_eq!(
            detail::<Door>(b" "),
            json!([{"type": "missing", "loc": ["body"], "msg": "Field required"}])
        );
    }
}
