//! rmf-dash-dataflows: the pure computation of rmf-dash. No tokio, no I/O, no clock.
//!
//! - [`prelude`]: the timely/differential types, spelled once;
//! - [`model`]: the records (RMF messages, engine inputs);
//! - [`ops`]: reusable event-time operators (keyed process, latest, windows, heartbeats, ...);
//! - [`harness`]: runs a dataflow on timed inputs and returns its timed output (tests).
pub mod derived;
pub mod harness;
pub mod model;
pub mod ops;
pub mod prelude;
