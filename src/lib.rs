//! rmf-dash: the real-time data backend for Open-RMF dashboards.
//!
//! - [`ingest`]: decoding RMF messages (schema parser, CDR, built-in definitions) and sources.
pub mod ingest;
