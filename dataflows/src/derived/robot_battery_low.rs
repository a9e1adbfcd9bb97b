//! `robot_battery_low` (being written).

use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "robot_battery_low",
    room: "/robots/{fleet}/{robot}/battery_low",
    kind: RoomKind::State,
    persistence: Persistence::History,
    max_lookback_ms: 30000,
    build,
};

fn build<'s>(inputs: &Inputs<'s>, _config: &super::Config) -> Coll<'s, Output> {
    inputs.robots.clone().flat_map(|_| None)
}
