//! rmf-dash: the real-time data backend for Open-RMF dashboards.
//!
//! - [`ingest`]: decoding RMF messages (schema parser, CDR, built-in definitions), recordings and
//!   sources;
//! - [`trace`]: the recorded-trace tools (generator, info, dump);
//! - [`progress`]: progress display of long operations.
pub mod api;
pub mod bench;
pub mod engine;
pub mod hub;
pub mod ingest;
pub mod progress;
pub mod replay;
pub mod serve;
pub mod trace;
