//! The loopback RMF peer (`--rmf-link loopback`): an in-process stand-in for RMF, for tests and
//! demos without a ROS 2 graph.
//!
//! - Every published message is recorded (the last [`CAPACITY`]), served by
//!   `GET /_loopback/published` and cleared by `DELETE /_loopback/published`.
//! - Task API requests are answered the way RMF's nodes answer them ([`answer`]): an
//!   ACKNOWLEDGE after [`ACK_DELAY`], the answer after [`ANSWER_DELAY`], then a second, different
//!   answer (several RMF nodes may answer one request: the first must win).
//! - Test hook: with `RMF_DASH_LOOPBACK_JOURNAL=FILE` every publication is also appended to
//!   `FILE` as one JSON line (`{topic, type, message}`), written before `publish` returns, so
//!   what "RMF" received survives a `kill -9` of the process (the exactly-once test of
//!   scheduled tasks counts dispatches there).
//! - A request whose JSON holds `"loopback": "fail"` (or a label `"loopback=fail"`) is answered
//!   with a failure; `"loopback": "silent"` (or `"loopback=silent"`) is never answered, to test
//!   timeouts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value, json};

use rmf_dash_dataflows::model::ros::ApiResponse;

use super::{LinkError, Outgoing, RmfLink, TaskApi};

/// Published messages kept.
pub const CAPACITY: usize = 1000;
/// When the acknowledgement of a task request comes.
pub const ACK_DELAY: Duration = Duration::from_millis(20);
/// When its answer comes (from the request).
pub const ANSWER_DELAY: Duration = Duration::from_millis(50);
/// When the repeated answer comes after the first.
const DUPLICATE_DELAY: Duration = Duration::from_millis(5);

/// One recorded publication.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    pub topic: &'static str,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub message: Value,
}

pub struct Loopback {
    node_name: String,
    task_api: Arc<TaskApi>,
    published: Mutex<VecDeque<Published>>,
    journal: Option<Mutex<std::fs::File>>,
}

/// The environment variable of the journal test hook.
pub const JOURNAL_ENV: &str = "RMF_DASH_LOOPBACK_JOURNAL";

impl Loopback {
    pub fn new(node_name: &str, task_timeout: Duration) -> Self {
        Loopback {
            node_name: node_name.into(),
            task_api: Arc::new(TaskApi::new(task_timeout)),
            published: Mutex::new(VecDeque::new()),
            journal: None,
        }
    }

    /// Also appends every publication to `path` (the journal test hook).
    pub fn with_journal(mut self, path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        tracing::warn!(path = %path.display(), "loopback link: journal test hook on");
        self.journal = Some(Mutex::new(file));
        Ok(self)
    }

    /// The recorded publications, oldest first.
    pub fn published(&self) -> Vec<Published> {
        self.published.lock().iter().cloned().collect()
    }

    /// Forgets the recorded publications; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut p = self.published.lock();
        let n = p.len();
        p.clear();
        n
    }

    /// Answers a task request later, off the caller's thread.
    fn respond(&self, request_id: CompactString, answer: String) {
        let api = self.task_api.clone();
        let send = move |type_: u8, json_msg: String| {
            api.deliver(&ApiResponse {
                type_,
                json_msg,
                request_id: request_id.clone(),
            });
        };
        let duplicate = failure(0, "loopback", "a second answer: must be ignored").to_string();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(ACK_DELAY).await;
                    send(ApiResponse::TYPE_ACKNOWLEDGE, String::new());
                    tokio::time::sleep(ANSWER_DELAY - ACK_DELAY).await;
                    send(ApiResponse::TYPE_RESPONDING, answer);
                    tokio::time::sleep(DUPLICATE_DELAY).await;
                    send(ApiResponse::TYPE_RESPONDING, duplicate);
                });
            }
            Err(_) => {
                std::thread::spawn(move || {
                    std::thread::sleep(ACK_DELAY);
                    send(ApiResponse::TYPE_ACKNOWLEDGE, String::new());
                    std::thread::sleep(ANSWER_DELAY - ACK_DELAY);
                    send(ApiResponse::TYPE_RESPONDING, answer);
                    std::thread::sleep(DUPLICATE_DELAY);
                    send(ApiResponse::TYPE_RESPONDING, duplicate);
                });
            }
        }
    }
}

impl RmfLink for Loopback {
    fn node_name(&self) -> &str {
        &self.node_name
    }

    fn publish(&self, message: Outgoing) -> Result<(), LinkError> {
        let answer = match &message {
            Outgoing::ApiRequest(r) => {
                answer(&r.request_id, &r.json_msg).map(|a| (r.request_id.clone(), a.to_string()))
            }
            _ => None,
        };
        {
            let published = Published {
                topic: message.topic(),
                type_name: message.type_name(),
                message: message.message_json(),
            };
            if let Some(journal) = &self.journal {
                use std::io::Write;
                let mut line = serde_json::to_vec(&published).unwrap_or_default();
                line.push(b'\n');
                journal
                    .lock()
                    .write_all(&line)
                    .map_err(|e| LinkError::Publish {
                        topic: message.topic(),
                        message: format!("loopback journal: {e}"),
                    })?;
            }
            let mut p = self.published.lock();
            p.push_back(published);
            while p.len() > CAPACITY {
                p.pop_front();
            }
        }
        if let Some((request_id, answer)) = answer {
            self.respond(request_id, answer);
        }
        Ok(())
    }

    fn task_api(&self) -> &TaskApi {
        &self.task_api
    }

    fn as_loopback(&self) -> Option<&Loopback> {
        Some(self)
    }
}

/// What the request asks the loopback to do: `"fail"`, `"silent"` or nothing.
fn instruction(v: &Value) -> Option<&'static str> {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(s)) = m.get("loopback") {
                match s.as_str() {
                    "fail" => return Some("fail"),
                    "silent" => return Some("silent"),
                    _ => {}
                }
            }
            m.values().find_map(instruction)
        }
        Value::Array(a) => a.iter().find_map(instruction),
        Value::String(s) => match s.as_str() {
            "loopback=fail" => Some("fail"),
            "loopback=silent" => Some("silent"),
            _ => None,
        },
        _ => None,
    }
}

/// RMF's failure answer (`{success: false, errors: [{code, category, detail}]}`).
fn failure(code: u32, category: &str, detail: &str) -> Value {
    json!({"success": false, "errors": [{"code": code, "category": category, "detail": detail}]})
}

/// The booking fields RMF copies from a task request into the task state.
fn booking(id: &str, request: &Value) -> Value {
    let mut booking = Map::new();
    booking.insert("id".into(), Value::from(id));
    for field in [
        "unix_millis_earliest_start_time",
        "unix_millis_request_time",
        "priority",
        "labels",
        "requester",
    ] {
        if let Some(v) = request.get(field).filter(|v| !v.is_null()) {
            booking.insert(field.into(), v.clone());
        }
    }
    Value::Object(booking)
}

/// The answer RMF would give to task API request `json_msg`, `None` when no RMF node answers
/// (unknown type, not JSON, or `"loopback": "silent"`).
///
/// - `dispatch_task_request` (the dispatcher): `{success: true, state}` with the booking id
///   `<category>.dispatch-<10 hex digits>` and status `queued`, as rmf_task_ros2's dispatcher.
/// - `robot_task_request` (the robot's fleet adapter): `{success: true, state}` with booking id =
///   the request id, `assigned_to` the robot, as rmf_fleet_adapter's TaskManager.
/// - cancel, kill, resume, rewind, undo phase skip: `{success: true}`; interrupt and skip phase:
///   `{success: true, token}` (the request id as token).
/// - `robot_commission_request`: `{commission, pending_direct_tasks_policy,
///   pending_dispatch_tasks_policy}`, each `{success: true}`.
pub fn answer(request_id: &str, json_msg: &str) -> Option<Value> {
    let msg: Value = serde_json::from_str(json_msg).ok()?;
    let type_ = msg.get("type")?.as_str()?;
    match instruction(&msg) {
        Some("silent") => return None,
        Some(_) => return Some(failure(1, "test", "requested failure")),
        None => {}
    }
    let ok = json!({"success": true});
    Some(match type_ {
        "dispatch_task_request" => {
            let request = msg.get("request").cloned().unwrap_or(Value::Null);
            let Some(category) = request.get("category").and_then(Value::as_str) else {
                return Some(failure(
                    5,
                    "Invalid request format",
                    "request.category is required",
                ));
            };
            let hex = uuid::Uuid::new_v4().simple().to_string();
            let id = format!("{category}.dispatch-{}", &hex[..10]);
            let mut state = Map::new();
            state.insert("booking".into(), booking(&id, &request));
            state.insert("category".into(), Value::from(category));
            state.insert(
                "detail".into(),
                request.get("description").cloned().unwrap_or(Value::Null),
            );
            state.insert("status".into(), Value::from("queued"));
            if let Some(start) = request.get("unix_millis_earliest_start_time") {
                state.insert("unix_millis_start_time".into(), start.clone());
            }
            state.insert("dispatch".into(), json!({"status": "queued", "errors": []}));
            json!({"success": true, "state": state})
        }
        "robot_task_request" => {
            let request = msg.get("request").cloned().unwrap_or(Value::Null);
            let mut state = Map::new();
            state.insert("booking".into(), booking(request_id, &request));
            state.insert(
                "detail".into(),
                request.get("description").cloned().unwrap_or(Value::Null),
            );
            state.insert("status".into(), Value::from("queued"));
            state.insert("dispatch".into(), json!({"status": "queued"}));
            state.insert(
                "assigned_to".into(),
                json!({"group": msg.get("fleet"), "name": msg.get("robot")}),
            );
            json!({"success": true, "state": state})
        }
        "cancel_task_request"
        | "kill_task_request"
        | "resume_task_request"
        | "rewind_task_request"
        | "undo_phase_skip_request" => ok,
        "interrupt_task_request" | "skip_phase_request" => {
            json!({"success": true, "token": request_id})
        }
        "robot_commission_request" => json!({
            "commission": ok,
            "pending_direct_tasks_policy": ok,
            "pending_dispatch_tasks_policy": ok,
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_answer_is_a_queued_task_state() {
        let a = answer(
            "r1",
            r#"{"type":"dispatch_task_request","request":{"unix_millis_earliest_start_time":5,"category":"patrol","description":{"places":["a"],"rounds":1},"requester":"me"}}"#,
        )
        .unwrap();
        let id = a["state"]["booking"]["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("patrol.dispatch-") && id.len() == "patrol.dispatch-".len() + 10);
        assert_eq!(
            a,
            json!({"success": true, "state": {
                "booking": {"id": id, "unix_millis_earliest_start_time": 5, "requester": "me"},
                "category": "patrol",
                "detail": {"places": ["a"], "rounds": 1},
                "status": "queued",
                "unix_millis_start_time": 5,
                "dispatch": {"status": "queued", "errors": []},
            }})
        );
    }

    #[test]
    fn robot_task_answer_is_assigned_to_the_robot() {
        let a = answer(
            "req-7",
            r#"{"type":"robot_task_request","robot":"r1","fleet":"f1","request":{"category":"go_to_place","description":{"waypoint":"w"}}}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            json!({"success": true, "state": {
                "booking": {"id": "req-7"},
                "detail": {"waypoint": "w"},
                "status": "queued",
                "dispatch": {"status": "queued"},
                "assigned_to": {"group": "f1", "name": "r1"},
            }})
        );
    }

    #[test]
    fn simple_token_and_commission_answers() {
        for t in [
            "cancel_task_request",
            "kill_task_request",
            "resume_task_request",
            "rewind_task_request",
            "undo_phase_skip_request",
        ] {
            assert_eq!(
                answer("x", &json!({"type": t}).to_string()),
                Some(json!({"success": true})),
                "{t}"
            );
        }
        for t in ["interrupt_task_request", "skip_phase_request"] {
            assert_eq!(
                answer("tok", &json!({"type": t}).to_string()),
                Some(json!({"success": true, "token": "tok"}))
            );
        }
        assert_eq!(
            answer("x", r#"{"type":"robot_commission_request"}"#),
            Some(json!({
                "commission": {"success": true},
                "pending_direct_tasks_policy": {"success": true},
                "pending_dispatch_tasks_policy": {"success": true},
            }))
        );
    }

    #[test]
    fn instructions_fail_and_silent() {
        let fail = Some(json!({"success": false, "errors": [
            {"code": 1, "category": "test", "detail": "requested failure"}
        ]}));
        assert_eq!(
            answer(
                "x",
                r#"{"type":"dispatch_task_request","request":{"category":"c","description":{"loopback":"fail"}}}"#
            ),
            fail
        );
        assert_eq!(
            answer(
                "x",
                r#"{"type":"cancel_task_request","task_id":"t","labels":["loopback=fail"]}"#
            ),
            fail
        );
        assert_eq!(
            answer(
                "x",
                r#"{"type":"dispatch_task_request","request":{"category":"c","description":{"loopback":"silent"}}}"#
            ),
            None
        );
        assert_eq!(answer("x", r#"{"type":"unknown_request"}"#), None);
        assert_eq!(answer("x", "not json"), None);
        assert_eq!(answer("x", r#"{"no_type":1}"#), None);
    }

    #[tokio::test]
    async fn answers_through_the_task_api_and_records_publications() {
        let link: Arc<dyn RmfLink> = Arc::new(Loopback::new("n", Duration::from_secs(2)));
        let t0 = std::time::Instant::now();
        let a = link
            .call(
                "cancel_task_request",
                r#"{"type":"cancel_task_request","task_id":"t"}"#.into(),
            )
            .await
            .unwrap();
        assert!(t0.elapsed() >= ANSWER_DELAY);
        assert_eq!(a, r#"{"success":true}"#);
        let lb = link.as_loopback().unwrap();
        let p = lb.published();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].topic, "task_api_requests");
        assert_eq!(p[0].type_name, "rmf_task_msgs/msg/ApiRequest");
        assert_eq!(
            p[0].message["json_msg"],
            r#"{"type":"cancel_task_request","task_id":"t"}"#
        );
        let id = p[0].message["request_id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        // The repeated answer arrives after the first and is dropped as a duplicate.
        tokio::time::sleep(DUPLICATE_DELAY * 4).await;
        assert_eq!(
            link.task_api()
                .metrics
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(lb.clear(), 1);
        assert!(lb.published().is_empty());
    }

    #[test]
    fn keeps_the_last_publications() {
        let lb = Loopback::new("n", Duration::from_secs(1));
        for i in 0..CAPACITY + 5 {
            lb.publish(Outgoing::AlertResponse(
                rmf_dash_dataflows::model::ros::AlertResponse {
                    id: format!("a{i}").into(),
                    response: "ok".into(),
                },
            ))
            .unwrap();
        }
        let p = lb.published();
        assert_eq!(p.len(), CAPACITY);
        assert_eq!(p[0].message["id"], "a5");
    }
}
