//! `/_replicate`: binary change frames (what a proxy reads from its upstream) and text requests
//! (what the main process and proxies read from their clients). Whatever the bytes, no panic; a
//! value accepted is within the bound and reads back; a change re-encoded decodes to itself; a
//! request accepted survives its own encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmf_dash_fuzz::json_limits::{Limits, MAX_DEPTH_CEILING, depth_of};
use rmf_dash_fuzz::replicate_frame::{decode, encode, parse_request, value_of};

fuzz_target!(|data: &[u8]| {
    let Some((&first, frame)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: 1 + usize::from(first) % MAX_DEPTH_CEILING,
        max_bytes: 1 << 16,
    };
    if let Ok(change) = decode(frame)
        && let Ok(value) = value_of(&change, &limits)
    {
        if let Some(v) = &value {
            assert!(depth_of(v.get().as_bytes()) <= limits.max_depth);
            // Valid JSON. Not read back as a `serde_json::Value`: serde_json refuses an object
            // whose first key is its private `RawValue` token (`seeds/replicate_frame/
            // raw_value_token`), which is valid JSON a dashboard parses like any other.
            serde_json::from_str::<serde::de::IgnoredAny>(v.get()).expect("value reads back");
        }
        let again = encode(change.room, value.as_deref(), change.meta);
        let decoded = decode(&again).expect("re-encoded change decodes");
        assert_eq!((decoded.room, decoded.meta), (change.room, change.meta));
        assert_eq!(decoded.value, value.as_deref().map(|v| v.get().as_bytes()));
    }
    if let Ok(text) = std::str::from_utf8(frame)
        && let Ok(request) = parse_request(text, &limits)
    {
        let text = serde_json::to_string(&request).expect("encodes");
        assert_eq!(parse_request(&text, &limits), Ok(request));
    }
});
