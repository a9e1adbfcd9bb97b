//! `latest` (being written).
