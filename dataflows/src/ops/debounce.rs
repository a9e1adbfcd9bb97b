//! `debounce` (being written).
