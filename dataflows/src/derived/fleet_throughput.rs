//! `fleet_throughput_1m` and `fleet_throughput_15m` (being written).

use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub const THROUGHPUT_1M: Descriptor = Descriptor {
    name: "fleet_throughput_1m",
    room: "/fleets/{name}/throughput_1m",
    kind: RoomKind::State,
    persistence: Persistence::History,
    max_lookback_ms: 60_000,
    build,
};

pub const THROUGHPUT_15M: Descriptor = Descriptor {
    name: "fleet_throughput_15m",
    room: "/fleets/{name}/throughput_15m",
    kind: RoomKind::State,
    persistence: Persistence::History,
    max_lookback_ms: 900_000,
    build,
};

fn build<'s>(inputs: &Inputs<'s>, _config: &super::Config) -> Coll<'s, Output> {
    inputs.tasks.clone().flat_map(|_| None)
}
