//! rmf-dash's network parsers compiled alone, for the fuzz targets: the very source files of
//! the server (included by path, not copied). Their `crate::` imports name only `json_limits`
//! (here under the same path) and the hub's `Meta` (below). The server's other modules (axum,
//! tokio, the store, ...) are not compiled, which keeps an instrumented build short.
//!
//! - `json_limits`: the bounds check every door runs (`src/json_limits/`);
//! - `internal_frame`: an `/_internal` text frame to engine inputs;
//! - `replicate_frame`: the `/_replicate` codec and request parser;
//! - `rest_body`: a REST body to a route's type (FastAPI's errors).

#[path = "../../src/json_limits/mod.rs"]
pub mod json_limits;

/// `src/ingest/internal/frame.rs`.
#[path = "../../src/ingest/internal/frame.rs"]
pub mod internal_frame;

/// `src/proxy/frame.rs`.
#[path = "../../src/proxy/frame.rs"]
pub mod replicate_frame;

/// `src/api/body/decode.rs`.
#[path = "../../src/api/body/decode.rs"]
pub mod rest_body;

/// What `proxy/frame.rs` uses of the hub: its `Meta` (the same fields; if the hub's changes in
/// a way the codec sees, this stops compiling).
pub mod hub {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Meta {
        pub seq: u64,
        pub t: u64,
        pub sent_ms: u64,
    }
}
