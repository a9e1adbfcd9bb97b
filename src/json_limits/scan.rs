//! The pure check every network parser runs before serde sees a document: its size, its UTF-8
//! and its nesting depth, refused with a [`Refusal`] naming which. No I/O, no globals: the fuzz
//! targets (`fuzz/`) include this file as it is.
//!
//! The depth scan walks the bytes once and keeps only a counter and whether it is inside a
//! string (escapes respected), so a document nested 2 million levels deep costs a linear scan
//! and no stack. Then serde_json reads the document once without building it ([`Valid`]), as
//! `serde_json::Value` would: a document that passes is one every reader downstream takes.
//! That pass is what refuses syntax errors, and also what only a full read finds: a number out
//! of `f64`'s range (`1e400`) and a lone surrogate (`"\ud800"`), which serde_json skips when it
//! keeps a value as raw text but refuses when it reads it (such a value would be accepted and
//! relayed, then vanish from every later reader, like a too-deep one). serde never recurses
//! deeper than the depth checked before.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

/// The bounds of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and objects (`{}` is 1 deep, `[{}]` 2, a scalar 0).
    pub max_depth: usize,
    /// Largest document, in bytes.
    pub max_bytes: usize,
}

/// What a refusal is counted as (the `reason` label of `rmf_dash_json_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Depth,
    Bytes,
    Syntax,
    Utf8,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Reason::Depth, Reason::Bytes, Reason::Syntax, Reason::Utf8];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Depth => "depth",
            Reason::Bytes => "bytes",
            Reason::Syntax => "syntax",
            Reason::Utf8 => "utf8",
        }
    }
}

/// Why a document was refused (its text is never quoted: it may be large or hostile).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("JSON nested deeper than {max} levels")]
    Depth { max: usize },
    #[error("document of {len} bytes is over the limit of {max} bytes")]
    Bytes { len: usize, max: usize },
    #[error("not UTF-8 (invalid byte at offset {at})")]
    Utf8 { at: usize },
    #[error("not JSON: {error}")]
    Syntax {
        /// serde_json's message (it names the line and column, never the text).
        error: String,
        /// Where serde_json stopped (1-based; FastAPI's answers give it).
        column: usize,
    },
}

impl Refusal {
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::Depth { .. } => Reason::Depth,
            Refusal::Bytes { .. } => Reason::Bytes,
            Refusal::Utf8 { .. } => Reason::Utf8,
            Refusal::Syntax { .. } => Reason::Syntax,
        }
    }

    /// A serde_json error as a syntax refusal.
    pub fn syntax(e: &serde_json::Error) -> Refusal {
        Refusal::Syntax {
            error: e.to_string(),
            column: e.column(),
        }
    }

    /// A serde_json error as a refusal: `Some` for a syntax error (or a truncated document),
    /// `None` for a valid JSON document of the wrong shape (the caller's own error).
    pub fn of_serde(e: &serde_json::Error) -> Option<Refusal> {
        (e.is_syntax() || e.is_eof()).then(|| Refusal::syntax(e))
    }
}

/// `bytes` as text when it is a JSON document within `limits`: size first (cheapest), then
/// UTF-8, then depth, then its syntax and values ([`Valid`]).
pub fn check<'a>(bytes: &'a [u8], limits: &Limits) -> Result<&'a str, Refusal> {
    if bytes.len() > limits.max_bytes {
        return Err(Refusal::Bytes {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Refusal::Utf8 {
        at: e.valid_up_to(),
    })?;
    within_depth(bytes, limits.max_depth)?;
    serde_json::from_str::<Valid>(text).map_err(|e| Refusal::syntax(&e))?;
    Ok(text)
}

/// A JSON document read only to know it is one, as `serde_json::Value` reads it (numbers in
/// range, strings with valid escapes, nothing after the document) but without building it.
pub struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Valid, D::Error> {
        d.deserialize_any(ValidVisitor)
    }
}

struct ValidVisitor;

impl<'de> Visitor<'de> for ValidVisitor {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_entry::<Valid, Valid>()?.is_some() {}
        Ok(Valid)
    }
}

/// Whether no array or object in `bytes` is nested deeper than `max`.
pub fn within_depth(bytes: &[u8], max: usize) -> Result<(), Refusal> {
    scan(bytes, max).map(drop)
}

/// The nesting depth of `bytes` (what tests and fuzz targets compare with serde's reading).
pub fn depth_of(bytes: &[u8]) -> usize {
    scan(bytes, usize::MAX).unwrap_or(usize::MAX)
}

/// The deepest nesting in `bytes`, refused as soon as it passes `max`. Brackets inside strings
/// do not count; an unbalanced document passes here and fails in serde. UTF-8 needs no care:
/// the bytes of a multi-byte character are all above 0x7f, so none is a quote, a backslash or
/// a bracket.
fn scan(bytes: &[u8], max: usize) -> Result<usize, Refusal> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i + 1),
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(Refusal::Depth { max });
                }
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(deepest)
}

/// The index of the quote that closes the string whose content starts at `from` (the length
/// of `bytes` when it is not closed).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_depth: 3,
        max_bytes: 64,
    };

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_counts_containers_not_brackets_in_strings() {
        assert_eq!(depth_of(b"1"), 0);
        assert_eq!(depth_of(b"{}"), 1);
        assert_eq!(depth_of(br#"{"a":[{"b":1}]}"#), 3);
        assert_eq!(depth_of(br#"{"a":"[[[[{{{{"}"#), 1);
        assert_eq!(depth_of(br#"["\"[[[", "\\", [[]]]"#), 3);
        assert_eq!(depth_of(br#"["\\\"[[["]"#), 1);
        assert_eq!(depth_of("[\"é[\", [\"ü\"]]".as_bytes()), 2);
        // Unclosed: still scanned to the end, linear.
        assert_eq!(depth_of(b"[\"abc"), 1);
        assert_eq!(depth_of(b"[\"\\"), 1);
    }

    #[test]
    fn check_refuses_by_size_then_utf8_then_depth() {
        assert_eq!(check(nested(3).as_bytes(), &L), Ok("[[[]]]"));
        assert_eq!(
            check(nested(4).as_bytes(), &L),
            Err(Refusal::Depth { max: 3 })
        );
        assert_eq!(
            check(&[b'['; 65], &L),
            Err(Refusal::Bytes { len: 65, max: 64 })
        );
        assert_eq!(check(b"[\"\xff\"]", &L), Err(Refusal::Utf8 { at: 2 }));
        assert_eq!(check(b"[[[[\xff", &L), Err(Refusal::Utf8 { at: 4 }));
        assert_eq!(Refusal::Depth { max: 3 }.reason().as_str(), "depth");
    }

    #[test]
    fn a_deep_document_is_refused_without_recursion() {
        let deep = "[".repeat(2_000_000);
        let limits = Limits {
            max_depth: 64,
            max_bytes: usize::MAX,
        };
        assert_eq!(
            check(deep.as_bytes(), &limits),
            Err(Refusal::Depth { max: 64 })
        );
        let strings = format!("[{}]", "\"[\",".repeat(100_000) + "1");
        assert!(check(strings.as_bytes(), &limits).is_ok());
    }

    #[test]
    fn what_serde_would_refuse_later_is_refused_now() {
        let limits = Limits {
            max_depth: 8,
            max_bytes: 1 << 10,
        };
        let reason = |text: &str| {
            check(text.as_bytes(), &limits)
                .map(str::len)
                .map_err(|r| r.to_string())
        };
        // serde_json keeps these as raw text, but refuses them when it reads them.
        let big = format!("[{}]", "9".repeat(400));
        for bad in ["[1e400]", &big, r#"{"a":"\ud800"}"#] {
            assert!(serde_json::value::RawValue::from_string(bad.into()).is_ok());
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
            let e = reason(bad).expect_err(bad);
            assert!(e.starts_with("not JSON: "), "{bad}: {e}");
        }
        for bad in [r#"{"a":"\u12"}"#, "{\"a\":1}x", "[1,]", ""] {
            let e = reason(bad).expect_err(bad);
            assert!(e.starts_with("not JSON: "), "{bad}: {e}");
        }
        for good in [
            "[1e-400, -0.0, 18446744073709551616, 1.5e300]",
            r#"{"a":"\ud83d\ude00"}"#,
        ] {
            assert_eq!(reason(good), Ok(good.len()));
            assert!(serde_json::from_str::<serde_json::Value>(good).is_ok());
        }
    }

    #[test]
    fn serde_reads_every_depth_the_check_lets_through() {
        // serde_json refuses 128 levels: every bound this project allows is below that.
        assert!(serde_json::from_str::<serde_json::Value>(&nested(127)).is_ok());
        let e = serde_json::from_str::<serde_json::Value>(&nested(128)).unwrap_err();
        assert_eq!(
            Refusal::of_serde(&e).map(|r| r.reason()),
            Some(Reason::Syntax)
        );
        let e = serde_json::from_str::<u32>("\"a\"").unwrap_err();
        assert_eq!(Refusal::of_serde(&e), None);
    }
}
