//! REST bodies through the body extractor's pure core: whatever the bytes, no panic, and an
//! error always has FastAPI's shape; a body accepted is within the bounds and reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmf_dash_fuzz::json_limits::{Limits, MAX_DEPTH_CEILING, depth_of};
use rmf_dash_fuzz::rest_body::{BodyError, decode};
use serde::Deserialize;
use serde_json::Value;

/// A body shaped like the task routes' (tagged enum, unknown fields refused, nested lists).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TaskLike {
    #[serde(rename = "type")]
    kind: Kind,
    task_id: String,
    labels: Option<Vec<String>>,
    request: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    CancelTaskRequest,
    KillTaskRequest,
}

fn check_error(e: &BodyError) {
    let detail = e.detail();
    match e {
        BodyError::TooLarge { .. } => assert!(detail.is_string()),
        _ => assert!(detail.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|i| i["type"].is_string() && i["loc"][0] == "body" && i["msg"].is_string())
        })),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: 1 + usize::from(first) % MAX_DEPTH_CEILING,
        max_bytes: 1 << 16,
    };
    match decode::<Value>(body, &limits) {
        Ok(v) => {
            let text = v.to_string();
            assert!(depth_of(text.as_bytes()) <= limits.max_depth);
            serde_json::from_str::<Value>(&text).expect("accepted body reads back");
        }
        Err(e) => check_error(&e),
    }
    if let Err(e) = decode::<TaskLike>(body, &limits) {
        check_error(&e);
    }
});
