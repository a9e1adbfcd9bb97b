//! `heartbeat` (being written).
