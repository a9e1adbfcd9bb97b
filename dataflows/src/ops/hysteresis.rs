//! `hysteresis` (being written).
