//! Latest-state views: the rooms of rmf-web's api-server (COMPAT.md), one per entity, carrying
//! the entity's latest state exactly as its JSON payload (encoded once at ingest).
//!
//! Inputs: the upsert collections of doors, lifts, dispensers, ingestors, fleets, tasks, the
//! building map, the fire alarm trigger, beacons, alerts, alert responses and delivery alerts.
//! State rooms hold the latest value; beacons and alerts are live streams of records.

use super::*;

macro_rules! view {
    ($const:ident, $name:literal, $room:literal, $kind:expr, $build:expr) => {
        pub const $const: Descriptor = Descriptor {
            name: $name,
            room: $room,
            kind: $kind,
            persistence: Persistence::Latest,
            max_lookback_ms: 0,
            build: $build,
        };
    };
}

fn device<'s>(c: Coll<'s, (Name, DeviceSample)>, template: &'static str) -> Coll<'s, Output> {
    c.map(move |(name, s)| Output::new(room(template, &[&name]), s.payload))
}

view!(
    DOOR_STATE,
    "door_state",
    "/doors/{name}/state",
    RoomKind::State,
    |i, _| device(i.doors.clone(), "/doors/{name}/state")
);
view!(
    DISPENSER_STATE,
    "dispenser_state",
    "/dispensers/{guid}/state",
    RoomKind::State,
    |i, _| device(i.dispensers.clone(), "/dispensers/{guid}/state")
);
view!(
    INGESTOR_STATE,
    "ingestor_state",
    "/ingestors/{guid}/state",
    RoomKind::State,
    |i, _| device(i.ingestors.clone(), "/ingestors/{guid}/state")
);
view!(
    LIFT_STATE,
    "lift_state",
    "/lifts/{name}/state",
    RoomKind::State,
    |i, _| i
        .lifts
        .clone()
        .map(|(name, s)| Output::new(room("/lifts/{name}/state", &[&name]), s.payload))
);
view!(
    FLEET_STATE,
    "fleet_state",
    "/fleets/{name}/state",
    RoomKind::State,
    |i, _| i
        .fleets
        .clone()
        .map(|(name, p)| Output::new(room("/fleets/{name}/state", &[&name]), p))
);
view!(
    TASK_STATE,
    "task_state",
    "/tasks/{id}/state",
    RoomKind::State,
    |i, _| i
        .tasks
        .clone()
        .map(|(id, s)| Output::new(room("/tasks/{id}/state", &[&id]), s.payload))
);
view!(
    ALERT_REQUESTS,
    "alert_requests",
    "/alerts/requests",
    RoomKind::Stream,
    |i, _| i
        .alerts
        .clone()
        .map(|(_, a)| Output::new("/alerts/requests".into(), a.payload))
);

/// The payload inputs of one kind, in one room.
fn payloads<'s>(i: &Inputs<'s>, kind: Kind, room: &'static str) -> Coll<'s, Output> {
    i.payloads
        .clone()
        .flat_map(move |((k, _), p)| (k == kind).then(|| Output::new(room.into(), p)))
}

view!(
    BUILDING_MAP,
    "building_map",
    "/building_map",
    RoomKind::State,
    |i, _| payloads(i, Kind::BuildingMap, "/building_map")
);
view!(
    FIRE_ALARM_TRIGGER,
    "fire_alarm_trigger",
    "/building_map/fire_alarm_trigger",
    RoomKind::State,
    |i, _| { payloads(i, Kind::FireAlarm, "/building_map/fire_alarm_trigger") }
);
view!(BEACONS, "beacons", "/beacons", RoomKind::Stream, |i, _| {
    payloads(i, Kind::Beacon, "/beacons")
});
view!(
    ALERT_RESPONSES,
    "alert_responses",
    "/alerts/responses",
    RoomKind::Stream,
    |i, _| payloads(i, Kind::AlertResponse, "/alerts/responses")
);
view!(
    DELIVERY_ALERTS,
    "delivery_alerts",
    "/delivery_alerts",
    RoomKind::Stream,
    |i, _| payloads(i, Kind::DeliveryAlert, "/delivery_alerts")
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;

    #[test]
    fn a_door_room_holds_the_latest_payload() {
        let p = |s: &str| DeviceSample {
            mode: 0,
            payload: Payload(s.into()),
        };
        let inputs = vec![
            (Name::from("d1"), p("{\"a\":1}"), 10),
            (Name::from("d2"), p("{\"b\":1}"), 10),
            (Name::from("d1"), p("{\"a\":2}"), 20),
        ];
        let out = run_upsert(1, inputs, 100, |doors| device(doors, "/doors/{name}/state"));
        let o = |r: &str, v: &str| Output::new(r.into(), Payload(v.into()));
        assert_eq!(
            out,
            vec![
                (o("/doors/d1/state", "{\"a\":1}"), 10, 1),
                (o("/doors/d2/state", "{\"b\":1}"), 10, 1),
                (o("/doors/d1/state", "{\"a\":1}"), 20, -1),
                (o("/doors/d1/state", "{\"a\":2}"), 20, 1),
            ]
        );
    }
}
