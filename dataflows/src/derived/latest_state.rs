//! Latest-state views: the rooms of rmf-web's api-server (COMPAT.md), one per entity, carrying
//! the entity's latest state exactly as its JSON payload (encoded once at ingest); a fleet's
//! robots name a task only once the task has a state ([`fleet_states`]).
//!
//! Inputs: the upsert collections of doors, lifts, dispensers, ingestors, fleets, tasks, the
//! building map, the fire alarm trigger, beacons, alerts, alert responses and delivery alerts.
//! State rooms hold the latest value; beacons and alerts are live streams of records.

use super::*;
use crate::ops::latest::LatestBy;

macro_rules! view {
    ($const:ident, $name:literal, $room:literal, $kind:expr, $inputs:expr, $build:expr) => {
        pub const $const: Descriptor = Descriptor {
            name: $name,
            room: $room,
            kind: $kind,
            persistence: Persistence::Latest,
            inputs: $inputs,
            config: Spec::of::<NoConfig>($name),
            robot: None,
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
    &["doors"],
    |i, _| device(i.doors.clone(), "/doors/{name}/state")
);
view!(
    DISPENSER_STATE,
    "dispenser_state",
    "/dispensers/{guid}/state",
    RoomKind::State,
    &["dispensers"],
    |i, _| device(i.dispensers.clone(), "/dispensers/{guid}/state")
);
view!(
    INGESTOR_STATE,
    "ingestor_state",
    "/ingestors/{guid}/state",
    RoomKind::State,
    &["ingestors"],
    |i, _| device(i.ingestors.clone(), "/ingestors/{guid}/state")
);
view!(
    LIFT_STATE,
    "lift_state",
    "/lifts/{name}/state",
    RoomKind::State,
    &["lifts"],
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
    &["fleets", "tasks"],
    |i, _| fleet_states(i.fleets.clone(), i.tasks.clone())
        .map(|(name, p)| Output::new(room("/fleets/{name}/state", &[&name]), p))
);

/// The fleets' states, each robot's `task_id` shown only once the task has a state: a fleet
/// adapter may name a task in its fleet state before it sends the task's own state, and a
/// dashboard that follows the reference (`GET /tasks?task_id=`, the task's room) must find it
/// (DESIGN.md invariant 9). While it has none, the robot's `task_id` is `""` (RMF's "no task");
/// the fleet's room changes again when the task's state arrives.
pub fn fleet_states<'s>(
    fleets: Coll<'s, (Name, Payload)>,
    tasks: Coll<'s, (Name, TaskSample)>,
) -> Coll<'s, (Name, Payload)> {
    let known = tasks
        .latest_by("TaskKnown", |_, _| Some(()))
        .map(|(task, ())| task);
    let unknown = fleets
        .clone()
        .flat_map(|(fleet, p)| named_tasks(&p).into_iter().map(move |t| (t, fleet.clone())))
        .antijoin(known)
        .map(|(task, fleet)| (fleet, task));
    let held = fleets
        .clone()
        .join(unknown)
        .reduce_named("FleetTasksHeld", |_fleet, named, out| {
            let unknown: Vec<&Name> = named.iter().map(|((_, task), _)| task).collect();
            if let Some(((payload, _), _)) = named.first() {
                out.push((without_tasks(payload, &unknown), 1));
            }
        });
    fleets
        .antijoin(held.clone().map(|(fleet, _)| fleet))
        .concat(held)
}

/// The task ids a fleet state's robots name (none for a payload that is not a fleet state).
fn named_tasks(p: &Payload) -> Vec<Name> {
    let Ok(fleet) = serde_json::from_str::<crate::model::api::FleetState>(p.as_str()) else {
        return Vec::new();
    };
    let mut ids: Vec<Name> = fleet
        .robots
        .iter()
        .flatten()
        .filter_map(|(_, r)| r.task_id.as_deref().filter(|t| !t.is_empty()))
        .map(Name::from)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `p` with the `task_id` of every robot naming one of `tasks` set to `""`.
fn without_tasks(p: &Payload, tasks: &[&Name]) -> Payload {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(p.as_str()) else {
        return p.clone();
    };
    if let Some(robots) = v.get_mut("robots").and_then(|r| r.as_object_mut()) {
        for robot in robots.values_mut() {
            let named = robot.get("task_id").and_then(|t| t.as_str());
            if named.is_some_and(|t| tasks.iter().any(|k| k.as_ref() == t)) {
                robot["task_id"] = serde_json::Value::from("");
            }
        }
    }
    Payload::of(&v)
}
view!(
    TASK_STATE,
    "task_state",
    "/tasks/{id}/state",
    RoomKind::State,
    &["tasks"],
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
    &["alerts"],
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
    &["building_map"],
    |i, _| payloads(i, Kind::BuildingMap, "/building_map")
);
view!(
    FIRE_ALARM_TRIGGER,
    "fire_alarm_trigger",
    "/building_map/fire_alarm_trigger",
    RoomKind::State,
    &["fire_alarm"],
    |i, _| { payloads(i, Kind::FireAlarm, "/building_map/fire_alarm_trigger") }
);
view!(
    BEACONS,
    "beacons",
    "/beacons",
    RoomKind::Stream,
    &["beacons"],
    |i, _| { payloads(i, Kind::Beacon, "/beacons") }
);
view!(
    ALERT_RESPONSES,
    "alert_responses",
    "/alerts/responses",
    RoomKind::Stream,
    &["alert_responses"],
    |i, _| payloads(i, Kind::AlertResponse, "/alerts/responses")
);
view!(
    DELIVERY_ALERTS,
    "delivery_alerts",
    "/delivery_alerts",
    RoomKind::Stream,
    &["delivery_alerts"],
    |i, _| payloads(i, Kind::DeliveryAlert, "/delivery_alerts")
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;

    fn fleet_payload(robots: &[(&str, &str)]) -> Payload {
        let robots: serde_json::Map<String, serde_json::Value> = robots
            .iter()
            .map(|(r, task)| {
                (
                    r.to_string(),
                    serde_json::json!({"name": r, "task_id": task}),
                )
            })
            .collect();
        Payload::of(&serde_json::json!({"name": "f", "robots": robots}))
    }

    fn fleet(robots: &[(&str, &str)], t: Time) -> (InputKey, InputValue, Time) {
        let p = fleet_payload(robots);
        ((Kind::Fleet, "f".into()), InputValue::Payload(p), t)
    }

    fn task(id: &str, t: Time) -> (InputKey, InputValue, Time) {
        let sample = TaskSample {
            status: "queued".into(),
            category: "patrol".into(),
            fleet: "f".into(),
            robot: "r1".into(),
            request_ms: None,
            start_ms: None,
            finish_ms: None,
            estimate_ms: None,
            active_phase: None,
            dispatch_status: "".into(),
            dispatch_errors: String::new(),
            payload: Payload::of(&serde_json::json!({"booking": {"id": id}, "t": t})),
        };
        (
            (Kind::Task, id.into()),
            InputValue::Task(Box::new(sample)),
            t,
        )
    }

    /// A robot's task shows in its fleet's room from the time the task has a state.
    #[test]
    fn a_fleet_names_a_task_only_once_its_state_is_known() {
        for workers in [1, 3] {
            let inputs = vec![
                fleet(&[("r1", "t1"), ("r2", "t0")], 10),
                task("t0", 10),
                task("t1", 30),
                fleet(&[("r1", "t1"), ("r2", "t2")], 40),
            ];
            let out = run_upsert(workers, inputs, 100, |c| {
                let i = Inputs::split(c);
                fleet_states(i.fleets.clone(), i.tasks.clone())
            });
            let f = |robots: &[(&str, &str)]| (Name::from("f"), fleet_payload(robots));
            assert_eq!(
                out,
                vec![
                    (f(&[("r1", ""), ("r2", "t0")]), 10, 1),
                    (f(&[("r1", ""), ("r2", "t0")]), 30, -1),
                    (f(&[("r1", "t1"), ("r2", "t0")]), 30, 1),
                    (f(&[("r1", "t1"), ("r2", "")]), 40, 1),
                    (f(&[("r1", "t1"), ("r2", "t0")]), 40, -1),
                ],
                "{workers} workers"
            );
        }
    }

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
