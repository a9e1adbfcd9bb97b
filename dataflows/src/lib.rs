//! rmf-dash-dataflows: model records and (later) the derived-event dataflows.
pub mod model;
