//! `task_queue` (being written).

use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "task_queue",
    room: "/fleets/{name}/task_queue",
    kind: RoomKind::State,
    persistence: Persistence::Latest,
    max_lookback_ms: 0,
    build,
};

fn build<'s>(inputs: &Inputs<'s>, _config: &super::Config) -> Coll<'s, Output> {
    inputs.tasks.clone().flat_map(|_| None)
}
