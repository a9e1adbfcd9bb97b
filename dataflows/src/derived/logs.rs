//! `task_log` and `fleet_log` (being written).

use super::*;

pub const TASK_LOG: Descriptor = Descriptor {
    name: "task_log",
    room: "/tasks/{id}/log",
    kind: RoomKind::Stream,
    persistence: Persistence::History,
    max_lookback_ms: 0,
    build: |i, _| i.task_logs.clone().flat_map(|_| None),
};

pub const FLEET_LOG: Descriptor = Descriptor {
    name: "fleet_log",
    room: "/fleets/{name}/log",
    kind: RoomKind::Stream,
    persistence: Persistence::History,
    max_lookback_ms: 0,
    build: |i, _| i.fleet_logs.clone().flat_map(|_| None),
};
