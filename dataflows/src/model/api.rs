//! Borrowed views of the fleet-adapter JSON (RMF.md section 5: fleet_state, task_state, logs):
//! only the fields the derived events read, deserialized straight from the received text (the
//! room payload is the text in rmf-web's document shape, [`super::shape`]). Unknown fields are
//! ignored; a known field of the wrong type makes the message invalid.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A millisecond time or count: an integer, or a number that is one (some adapters send floats).
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v: Option<f64> = Option::deserialize(d)?;
    Ok(v.filter(|x| x.is_finite() && *x >= 0.0).map(|x| x as u64))
}

#[derive(Debug, Deserialize)]
pub struct Location<'a> {
    #[serde(borrow, default)]
    pub map: Option<Cow<'a, str>>,
    #[serde(default)]
    pub x: Option<f64>,
    #[serde(default)]
    pub y: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Issue<'a> {
    #[serde(borrow, default)]
    pub category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub detail: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct RobotState<'a> {
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub task_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "millis")]
    pub unix_millis_time: Option<u64>,
    #[serde(borrow, default)]
    pub location: Option<Location<'a>>,
    #[serde(default)]
    pub battery: Option<f64>,
    #[serde(borrow, default)]
    pub issues: Option<Vec<Issue<'a>>>,
}

/// `fleet_state_update` data.
#[derive(Debug, Deserialize)]
pub struct FleetState<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub robots: Option<BTreeMap<Cow<'a, str>, RobotState<'a>>>,
}

#[derive(Debug, Deserialize)]
pub struct Booking<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(default, deserialize_with = "millis")]
    pub unix_millis_request_time: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct AssignedTo<'a> {
    #[serde(borrow, default)]
    pub group: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct Assignment<'a> {
    #[serde(borrow, default)]
    pub fleet_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub expected_robot_name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct Dispatch<'a> {
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub assignment: Option<Assignment<'a>>,
    #[serde(borrow, default)]
    pub errors: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct Phase<'a> {
    #[serde(borrow, default)]
    pub category: Option<Cow<'a, str>>,
}

/// `task_state_update` data.
#[derive(Debug, Deserialize)]
pub struct TaskState<'a> {
    #[serde(borrow)]
    pub booking: Booking<'a>,
    #[serde(borrow, default)]
    pub category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub assigned_to: Option<AssignedTo<'a>>,
    #[serde(borrow, default)]
    pub dispatch: Option<Dispatch<'a>>,
    #[serde(default, deserialize_with = "millis")]
    pub unix_millis_start_time: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub unix_millis_finish_time: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub estimate_millis: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub active: Option<u64>,
    #[serde(borrow, default)]
    pub phases: Option<BTreeMap<Cow<'a, str>, Phase<'a>>>,
}

/// A log entry.
#[derive(Debug, Deserialize)]
pub struct LogEntry<'a> {
    #[serde(default, deserialize_with = "millis")]
    pub seq: Option<u64>,
    #[serde(borrow, default)]
    pub tier: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "millis")]
    pub unix_millis_time: Option<u64>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct PhaseLog<'a> {
    #[serde(borrow, default)]
    pub log: Option<Vec<LogEntry<'a>>>,
    #[serde(borrow, default)]
    pub events: Option<BTreeMap<Cow<'a, str>, Vec<LogEntry<'a>>>>,
}

/// `task_log_update` data.
#[derive(Debug, Deserialize)]
pub struct TaskLog<'a> {
    #[serde(borrow)]
    pub task_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub log: Option<Vec<LogEntry<'a>>>,
    #[serde(borrow, default)]
    pub phases: Option<BTreeMap<Cow<'a, str>, PhaseLog<'a>>>,
}

/// `fleet_log_update` data.
#[derive(Debug, Deserialize)]
pub struct FleetLog<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub robots: Option<BTreeMap<Cow<'a, str>, Vec<LogEntry<'a>>>>,
}

/// A websocket frame `{"type": ..., "data": {...}}`.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(borrow, rename = "type")]
    pub type_: Cow<'a, str>,
    #[serde(borrow)]
    pub data: &'a RawValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_only_what_they_need() {
        let t: TaskState = serde_json::from_str(
            r#"{"booking":{"id":"t\u00e91","unix_millis_request_time":5.0,"x":[1]},"status":"queued","active":2,"phases":{"2":{"category":"Go","events":{}}},"extra":{"a":null}}"#,
        )
        .unwrap();
        assert_eq!(t.booking.id, "té1");
        assert_eq!(t.booking.unix_millis_request_time, Some(5));
        assert_eq!(t.phases.unwrap()["2"].category.as_deref(), Some("Go"));
        let bad = serde_json::from_str::<TaskState>(r#"{"booking":{"id":7}}"#);
        assert!(bad.is_err());
    }
}
