//! `lift_occupant` (being written).

use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "lift_occupant",
    room: "/lifts/{name}/occupant",
    kind: RoomKind::State,
    persistence: Persistence::History,
    max_lookback_ms: 0,
    build,
};

fn build<'s>(inputs: &Inputs<'s>, _config: &super::Config) -> Coll<'s, Output> {
    inputs.lifts.clone().flat_map(|_| None)
}
