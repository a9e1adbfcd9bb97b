//! `/_internal` text frames: whatever the bytes, no panic; a frame accepted carries `data` no
//! deeper than the bound, which serde reads back (nothing accepted can vanish later).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmf_dash_dataflows::model::Record;
use rmf_dash_dataflows::model::input::Names;
use rmf_dash_fuzz::internal_frame::{frame_inputs, parse_frame};
use rmf_dash_fuzz::json_limits::{Limits, MAX_DEPTH_CEILING, depth_of};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the depth bound, so that the fuzzer meets its edge often.
    let Some((&first, frame)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: 1 + usize::from(first) % MAX_DEPTH_CEILING,
        max_bytes: 1 << 16,
    };
    // The websocket hands over text frames as UTF-8 only (others close the connection).
    let Ok(text) = std::str::from_utf8(frame) else {
        return;
    };
    if let Ok(Record::Json { data, .. }) = parse_frame(text, &limits) {
        assert!(depth_of(data.as_bytes()) < limits.max_depth);
        serde_json::from_str::<serde_json::Value>(&data).expect("accepted data reads back");
    }
    let _ = frame_inputs(text, &limits, &mut Names::default());
});
