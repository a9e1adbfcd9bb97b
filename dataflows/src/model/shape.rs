//! The documents rmf-web's api-server sends, as shapes: rmf-web parses every fleet-adapter
//! `task_state` and `fleet_state` through its pydantic models and sends the model again, so a
//! dashboard sees every field of the model, `null` when the adapter left it out, in the model's
//! order, and no field the model lacks (COMPAT.md: "Documents have the shape rmf-web's models
//! give them"). [`task_state`] and [`fleet_state`] re-serialize an adapter's JSON the same way;
//! the engine's payloads (rooms, REST, the store) are these documents.
//!
//! The models are those of rmf-web's `api_server/models/rmf_api/` (`task_state.py`,
//! `fleet_state.py`, `robot_state.py`), as listed in its api-client schema
//! (`packages/api-client/schema/index.ts`: `TaskState`, `Booking`, `Dispatch`, `Phase`,
//! `EventState`, `FleetState`, `RobotState`, ...). A value of another JSON type than the model's
//! (which rmf-web would refuse) is kept as it is.

use serde_json::{Map, Value};

/// The shape of a JSON value in a model.
#[derive(Debug)]
pub enum Shape {
    /// Kept as it is (scalars, free-form `detail`, lists of scalars).
    Any,
    /// An object with these fields, in this order.
    Object(&'static [(&'static str, Shape)]),
    /// An object whose every value has this shape (`phases`, `robots`, ...).
    Map(&'static Shape),
    /// A list whose every item has this shape.
    List(&'static Shape),
}

use Shape::{Any, List, Map as Each, Object};

const LABELS_AT: Shape = Object(&[("unix_millis_request_time", Any), ("labels", Any)]);

const TASK_STATE: Shape = Object(&[
    (
        "booking",
        Object(&[
            ("id", Any),
            ("unix_millis_earliest_start_time", Any),
            ("unix_millis_request_time", Any),
            ("priority", Any),
            ("labels", Any),
            ("requester", Any),
        ]),
    ),
    ("category", Any),
    ("detail", Any),
    ("unix_millis_start_time", Any),
    ("unix_millis_finish_time", Any),
    ("original_estimate_millis", Any),
    ("estimate_millis", Any),
    ("assigned_to", Object(&[("group", Any), ("name", Any)])),
    ("status", Any),
    (
        "dispatch",
        Object(&[
            ("status", Any),
            (
                "assignment",
                Object(&[("fleet_name", Any), ("expected_robot_name", Any)]),
            ),
            (
                "errors",
                List(&Object(&[
                    ("code", Any),
                    ("category", Any),
                    ("detail", Any),
                ])),
            ),
        ]),
    ),
    ("phases", Each(&PHASE)),
    ("completed", Any),
    ("active", Any),
    ("pending", Any),
    (
        "interruptions",
        Each(&Object(&[
            ("unix_millis_request_time", Any),
            ("labels", Any),
            ("resumed_by", LABELS_AT),
        ])),
    ),
    ("cancellation", LABELS_AT),
    ("killed", LABELS_AT),
]);

const PHASE: Shape = Object(&[
    ("id", Any),
    ("category", Any),
    ("detail", Any),
    ("unix_millis_start_time", Any),
    ("unix_millis_finish_time", Any),
    ("original_estimate_millis", Any),
    ("estimate_millis", Any),
    ("final_event_id", Any),
    (
        "events",
        Each(&Object(&[
            ("id", Any),
            ("status", Any),
            ("name", Any),
            ("detail", Any),
            ("deps", Any),
        ])),
    ),
    (
        "skip_requests",
        Each(&Object(&[
            ("unix_millis_request_time", Any),
            ("labels", Any),
            ("undo", LABELS_AT),
        ])),
    ),
]);

const FLEET_STATE: Shape = Object(&[("name", Any), ("robots", Each(&ROBOT_STATE))]);

const ROBOT_STATE: Shape = Object(&[
    ("name", Any),
    ("status", Any),
    ("task_id", Any),
    ("unix_millis_time", Any),
    (
        "location",
        Object(&[("map", Any), ("x", Any), ("y", Any), ("yaw", Any)]),
    ),
    ("battery", Any),
    (
        "issues",
        List(&Object(&[("category", Any), ("detail", Any)])),
    ),
    (
        "commission",
        Object(&[
            ("dispatch_tasks", Any),
            ("direct_tasks", Any),
            ("idle_behavior", Any),
        ]),
    ),
    (
        "mutex_groups",
        Object(&[("locked", Any), ("requesting", Any)]),
    ),
]);

impl Shape {
    /// `value` in this shape: an object gets every field of the shape (`null` when absent) in
    /// the shape's order and loses the others; maps and lists shape each of their values.
    pub fn apply(&self, value: Value) -> Value {
        match (self, value) {
            (Object(fields), Value::Object(mut given)) => {
                let mut out = Map::with_capacity(fields.len());
                for (name, shape) in *fields {
                    let v = match given.remove(*name) {
                        Some(Value::Null) | None => Value::Null,
                        Some(v) => shape.apply(v),
                    };
                    out.insert((*name).to_string(), v);
                }
                Value::Object(out)
            }
            (Each(shape), Value::Object(given)) => Value::Object(
                given
                    .into_iter()
                    .map(|(k, v)| (k, shape.apply(v)))
                    .collect(),
            ),
            (List(shape), Value::Array(items)) => {
                Value::Array(items.into_iter().map(|v| shape.apply(v)).collect())
            }
            (_, v) => v,
        }
    }

    /// `text` (JSON) in this shape, as text; `None` when it is not JSON.
    pub fn apply_text(&self, text: &str) -> Option<String> {
        let value: Value = serde_json::from_str(text).ok()?;
        serde_json::to_string(&self.apply(value)).ok()
    }
}

/// rmf-web's `TaskState` document of an adapter's `task_state` JSON.
pub fn task_state(text: &str) -> Option<String> {
    TASK_STATE.apply_text(text)
}

const TASK_REQUEST: Shape = Object(&[
    ("unix_millis_earliest_start_time", Any),
    ("unix_millis_request_time", Any),
    ("priority", Any),
    ("category", Any),
    ("description", Any),
    ("labels", Any),
    ("requester", Any),
    ("fleet_name", Any),
]);

const DISPATCH_FAILED: Shape = Object(&[
    ("success", Any),
    (
        "errors",
        List(&Object(&[
            ("code", Any),
            ("category", Any),
            ("detail", Any),
        ])),
    ),
]);

/// rmf-web's `TaskRequest` document (`POST /tasks/dispatch_task`'s `request`, kept and served
/// by `/tasks/{id}/request`, and a scheduled task's `task_request`).
pub fn task_request(value: Value) -> Value {
    TASK_REQUEST.apply(value)
}

/// rmf-web's `TaskDispatchResponse` document of RMF's answer to a dispatch or robot task:
/// `{success: true, state: TaskState}`, or `{success, errors: [Error]}`.
pub fn task_dispatch_response(text: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let shaped = if value.get("success") == Some(&Value::Bool(true)) {
        let state = value.get_mut("state").map(Value::take).unwrap_or_default();
        serde_json::json!({"success": true, "state": TASK_STATE.apply(state)})
    } else {
        DISPATCH_FAILED.apply(value)
    };
    serde_json::to_string(&shaped).ok()
}

/// rmf-web's `FleetState` document of an adapter's `fleet_state` JSON.
pub fn fleet_state(text: &str) -> Option<String> {
    FLEET_STATE.apply_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer rmf-web's api-server gave for this input (its `GET /tasks/t1/state`, which
    /// equals its socket.io event), with the same fields in the same order.
    #[test]
    fn task_state_as_rmf_web_sends_it() {
        let input = r#"{"booking":{"id":"t1","labels":["a=b"]},"status":"underway","extra":1,"phases":{"1":{"id":1,"events":{"0":{"id":0,"zzz":2}}}}}"#;
        let expected = concat!(
            r#"{"booking":{"id":"t1","unix_millis_earliest_start_time":null,"unix_millis_request_time":null,"priority":null,"labels":["a=b"],"requester":null},"#,
            r#""category":null,"detail":null,"unix_millis_start_time":null,"unix_millis_finish_time":null,"original_estimate_millis":null,"#,
            r#""estimate_millis":null,"assigned_to":null,"status":"underway","dispatch":null,"#,
            r#""phases":{"1":{"id":1,"category":null,"detail":null,"unix_millis_start_time":null,"unix_millis_finish_time":null,"#,
            r#""original_estimate_millis":null,"estimate_millis":null,"final_event_id":null,"#,
            r#""events":{"0":{"id":0,"status":null,"name":null,"detail":null,"deps":null}},"skip_requests":null}},"#,
            r#""completed":null,"active":null,"pending":null,"interruptions":null,"cancellation":null,"killed":null}"#
        );
        assert_eq!(task_state(input).as_deref(), Some(expected));
    }

    #[test]
    fn nested_optional_objects_get_their_nulls() {
        let input = r#"{"booking":{"id":"t"},"dispatch":{"status":"queued","errors":[{"code":1}]},"interruptions":{"k":{"unix_millis_request_time":1,"labels":[],"resumed_by":{"labels":["x"]}}}}"#;
        let v: Value =
            serde_json::from_str(&task_state(input).unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            v["dispatch"],
            serde_json::json!({"status": "queued", "assignment": null, "errors": [{"code": 1, "category": null, "detail": null}]})
        );
        assert_eq!(
            v["interruptions"]["k"]["resumed_by"],
            serde_json::json!({"unix_millis_request_time": null, "labels": ["x"]})
        );
    }

    #[test]
    fn fleet_state_as_rmf_web_sends_it() {
        let input = r#"{"name":"f1","robots":{"r1":{"name":"r1","task_id":"t1","extra":1}}}"#;
        assert_eq!(
            fleet_state(input).as_deref(),
            Some(
                r#"{"name":"f1","robots":{"r1":{"name":"r1","status":null,"task_id":"t1","unix_millis_time":null,"location":null,"battery":null,"issues":null,"commission":null,"mutex_groups":null}}}"#
            )
        );
    }

    #[test]
    fn dispatch_answers_as_rmf_web_sends_them() {
        let failed = task_dispatch_response(
            r#"{"success":false,"errors":[{"code":1,"detail":"nope"}],"x":1}"#,
        );
        assert_eq!(
            failed.as_deref(),
            Some(r#"{"success":false,"errors":[{"code":1,"category":null,"detail":"nope"}]}"#)
        );
        let ok = task_dispatch_response(
            r#"{"success":true,"state":{"booking":{"id":"t"},"status":"queued"}}"#,
        )
        .unwrap_or_default();
        let v: Value = serde_json::from_str(&ok).unwrap_or_default();
        assert_eq!(v["state"]["killed"], Value::Null);
        assert_eq!(v["state"]["booking"]["requester"], Value::Null);
        assert_eq!(v["state"]["status"], "queued");
        assert_eq!(
            task_request(serde_json::json!({"category": "c", "description": {}, "x": 1})),
            serde_json::json!({"unix_millis_earliest_start_time": null, "unix_millis_request_time": null,
                "priority": null, "category": "c", "description": {}, "labels": null,
                "requester": null, "fleet_name": null})
        );
    }

    #[test]
    fn values_of_another_type_are_kept() {
        assert_eq!(
            fleet_state(r#"{"name":"f","robots":[1]}"#).as_deref(),
            Some(r#"{"name":"f","robots":[1]}"#)
        );
        assert_eq!(fleet_state("not json"), None);
    }
}
