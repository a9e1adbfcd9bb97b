//! Commands to RMF (RMF.md section 6): what rmf-dash publishes to RMF and the task API
//! pseudo-service.
//!
//! - [`RmfLink`] is the transport: it publishes one [`Outgoing`] message on its RMF topic and
//!   owns a [`TaskApi`]. The live ROS 2 transport implements it by publishing on the topics of
//!   [`Outgoing::topic`] (QoS of RMF.md section 3) and feeding every `ApiResponse` it hears on
//!   `task_api_responses` to [`TaskApi::deliver`]; [`loopback::Loopback`] implements it in process
//!   for tests and demos; [`Disabled`] refuses every command (`--rmf-link none`).
//! - The messages are built here, once for every transport (`impl dyn RmfLink`): door and lift
//!   requests carry the link's node name as requester / session id and the link's clock as
//!   request time, as rmf-web's api-server does.
//! - The task API: a request is an `ApiRequest {json_msg, request_id: uuid v4}` on
//!   `task_api_requests`; its answer is the first `ApiResponse` on `task_api_responses` with the
//!   same request id and type RESPONDING. Any node may answer: answers to unknown ids and repeated
//!   answers are dropped. An ACKNOWLEDGE restarts the wait (bounded: [`TaskApi::max_wait`]).

pub mod loopback;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use compact_str::CompactString;
use parking_lot::Mutex;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::mpsc;

use rmf_dash_dataflows::model::ros::{
    AlertResponse, ApiRequest, ApiResponse, Bool, DeliveryAlert, DoorMode, DoorRequest,
    LiftRequest, MutexGroupManualRelease, Time,
};

/// The node name rmf-dash uses on the ROS graph (requester id of door requests, session id of
/// lift requests).
pub const NODE_NAME: &str = "rmf_dash";

/// Default wait for a task API answer (rmf-web's api-server waits 5 s too).
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Answered request ids remembered to tell a repeated answer from an unknown one.
const ANSWERED_MEMORY: usize = 1024;

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("no RMF link: the server runs with --rmf-link none")]
    Disabled,
    #[error("publishing on {topic}: {message}")]
    Publish {
        topic: &'static str,
        message: String,
    },
    #[error("RMF gave no answer to {request_type} within {timeout_ms} ms")]
    Timeout {
        request_type: String,
        timeout_ms: u64,
    },
    #[error("the RMF link closed before {request_type} was answered")]
    Closed { request_type: String },
}

/// Which link `serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkKind {
    /// In-process RMF stand-in: records what is published, answers task requests
    /// (tests and demos).
    Loopback,
    /// No link: every command is refused with 503.
    None,
}

/// What a link needs.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub kind: LinkKind,
    pub node_name: String,
    /// Wait for a task API answer (restarted by an acknowledgement).
    pub task_timeout: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            kind: LinkKind::Loopback,
            node_name: NODE_NAME.into(),
            task_timeout: DEFAULT_TASK_TIMEOUT,
        }
    }
}

/// Builds the link of `config`.
pub fn connect(config: &LinkConfig) -> Arc<dyn RmfLink> {
    match config.kind {
        LinkKind::Loopback => {
            let link = loopback::Loopback::new(&config.node_name, config.task_timeout);
            match std::env::var_os(loopback::JOURNAL_ENV) {
                Some(path) => match link.with_journal(std::path::Path::new(&path)) {
                    Ok(link) => Arc::new(link),
                    Err(e) => {
                        tracing::error!(error = %e, "loopback journal cannot be opened; commands are refused");
                        Arc::new(Disabled::new(&config.node_name, config.task_timeout))
                    }
                },
                None => Arc::new(link),
            }
        }
        LinkKind::None => Arc::new(Disabled::new(&config.node_name, config.task_timeout)),
    }
}

/// One message rmf-dash publishes to RMF, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    DoorRequest(DoorRequest),
    LiftRequest(LiftRequest),
    ApiRequest(ApiRequest),
    AlertResponse(AlertResponse),
    DeliveryAlertResponse(DeliveryAlert),
    /// `fire_alarm_trigger` (false = reset).
    FireAlarmTrigger(Bool),
    MutexGroupManualRelease(MutexGroupManualRelease),
}

impl Outgoing {
    /// The RMF topic (relative name, as RMF's nodes use it).
    pub fn topic(&self) -> &'static str {
        match self {
            Outgoing::DoorRequest(_) => "adapter_door_requests",
            Outgoing::LiftRequest(_) => "adapter_lift_requests",
            Outgoing::ApiRequest(_) => "task_api_requests",
            Outgoing::AlertResponse(_) => "alert_response",
            Outgoing::DeliveryAlertResponse(_) => "delivery_alert_response",
            Outgoing::FireAlarmTrigger(_) => "fire_alarm_trigger",
            Outgoing::MutexGroupManualRelease(_) => "mutex_group_manual_release",
        }
    }

    /// The ROS 2 type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Outgoing::DoorRequest(_) => "rmf_door_msgs/msg/DoorRequest",
            Outgoing::LiftRequest(_) => "rmf_lift_msgs/msg/LiftRequest",
            Outgoing::ApiRequest(_) => "rmf_task_msgs/msg/ApiRequest",
            Outgoing::AlertResponse(_) => "rmf_task_msgs/msg/AlertResponse",
            Outgoing::DeliveryAlertResponse(_) => "rmf_fleet_msgs/msg/DeliveryAlert",
            Outgoing::FireAlarmTrigger(_) => "std_msgs/msg/Bool",
            Outgoing::MutexGroupManualRelease(_) => "rmf_fleet_msgs/msg/MutexGroupManualRelease",
        }
    }

    /// The message as JSON (field names and order of the `.msg` definition).
    pub fn message_json(&self) -> serde_json::Value {
        fn json<T: Serialize>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
        }
        match self {
            Outgoing::DoorRequest(m) => json(m),
            Outgoing::LiftRequest(m) => json(m),
            Outgoing::ApiRequest(m) => json(m),
            Outgoing::AlertResponse(m) => json(m),
            Outgoing::DeliveryAlertResponse(m) => json(m),
            Outgoing::FireAlarmTrigger(m) => json(m),
            Outgoing::MutexGroupManualRelease(m) => json(m),
        }
    }
}

/// A transport to RMF.
pub trait RmfLink: Send + Sync {
    /// The node name on the ROS graph.
    fn node_name(&self) -> &str;

    /// The time stamped on requests (a live link: its node's clock, which may be simulation
    /// time).
    fn now(&self) -> Time {
        Time::from_nanos(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        )
    }

    /// Publishes one message on its topic. Must not block.
    fn publish(&self, message: Outgoing) -> Result<(), LinkError>;

    /// The task API correlation of this link (the transport feeds it every `ApiResponse`).
    fn task_api(&self) -> &TaskApi;

    /// The loopback peer, when this link is one (for its test routes).
    fn as_loopback(&self) -> Option<&loopback::Loopback> {
        None
    }
}

/// The commands, built once for every transport.
impl dyn RmfLink {
    /// A door request (`requested_mode` a DoorMode value).
    pub fn request_door(&self, door_name: &str, mode: u32) -> Result<DoorRequest, LinkError> {
        let request = DoorRequest {
            request_time: self.now(),
            requester_id: self.node_name().into(),
            door_name: door_name.into(),
            requested_mode: DoorMode { value: mode },
        };
        self.publish(Outgoing::DoorRequest(request.clone()))?;
        Ok(request)
    }

    /// A lift request for this node's session, then the same request for each additional
    /// session id (as rmf-web does). Returns what was published.
    pub fn request_lift(
        &self,
        lift_name: &str,
        destination_floor: &str,
        request_type: u8,
        door_state: u8,
        additional_session_ids: &[String],
    ) -> Result<Vec<LiftRequest>, LinkError> {
        let first = LiftRequest {
            lift_name: lift_name.into(),
            request_time: self.now(),
            session_id: self.node_name().into(),
            request_type,
            destination_floor: destination_floor.into(),
            door_state,
        };
        let mut sent = Vec::with_capacity(1 + additional_session_ids.len());
        sent.push(first.clone());
        for session in additional_session_ids {
            sent.push(LiftRequest {
                session_id: session.as_str().into(),
                ..first.clone()
            });
        }
        for request in &sent {
            self.publish(Outgoing::LiftRequest(request.clone()))?;
        }
        Ok(sent)
    }

    pub fn respond_to_alert(&self, id: &str, response: &str) -> Result<(), LinkError> {
        self.publish(Outgoing::AlertResponse(AlertResponse {
            id: id.into(),
            response: response.into(),
        }))
    }

    pub fn respond_to_delivery_alert(&self, alert: DeliveryAlert) -> Result<(), LinkError> {
        self.publish(Outgoing::DeliveryAlertResponse(alert))
    }

    /// `fire_alarm_trigger` false.
    pub fn reset_fire_alarm_trigger(&self) -> Result<(), LinkError> {
        self.publish(Outgoing::FireAlarmTrigger(Bool { data: false }))
    }

    pub fn release_mutex_groups(
        &self,
        fleet: &str,
        robot: &str,
        groups: &[String],
    ) -> Result<(), LinkError> {
        self.publish(Outgoing::MutexGroupManualRelease(MutexGroupManualRelease {
            release_mutex_groups: groups.iter().map(|g| g.as_str().into()).collect(),
            fleet: fleet.into(),
            robot: robot.into(),
        }))
    }

    /// Calls the task API: publishes `json_msg` under a new request id and waits for the answer
    /// (its `json_msg`). `request_type` names the request in errors.
    pub async fn call(&self, request_type: &str, json_msg: String) -> Result<String, LinkError> {
        let request_id = CompactString::from(uuid::Uuid::new_v4().to_string());
        self.call_with_id(request_type, json_msg, request_id).await
    }

    /// [`call`](Self::call) under a given request id (scheduled tasks: an id derived from the
    /// occurrence, the same when a claim is sent again).
    pub async fn call_with_id(
        &self,
        request_type: &str,
        json_msg: String,
        request_id: CompactString,
    ) -> Result<String, LinkError> {
        // Registered before publishing: an immediate answer is not lost.
        let waiter = self.task_api().register(request_id.clone());
        self.publish(Outgoing::ApiRequest(ApiRequest {
            json_msg,
            request_id,
        }))?;
        waiter.wait(request_type).await
    }
}

/// What [`TaskApi::deliver`] did with an `ApiResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The answer of a waiting request.
    Answered,
    /// An acknowledgement: the request's wait restarts.
    Acknowledged,
    /// A further answer to a request already answered: dropped.
    Duplicate,
    /// No waiting request has this id (another client's, or given up): dropped.
    Unknown,
    /// Type UNINITIALIZED or unknown: dropped.
    Invalid,
}

enum Event {
    Ack,
    Answer(String),
}

#[derive(Default)]
struct Correlation {
    pending: HashMap<CompactString, mpsc::UnboundedSender<Event>>,
    /// Recently answered ids, oldest first (bounded), to recognize duplicates.
    answered: VecDeque<CompactString>,
    answered_set: HashSet<CompactString>,
}

/// Counters of the task API.
#[derive(Debug, Default)]
pub struct TaskApiMetrics {
    pub requests: AtomicU64,
    pub answered: AtomicU64,
    pub timeouts: AtomicU64,
    /// Answers dropped as duplicates or for unknown ids.
    pub dropped: AtomicU64,
}

/// Correlation of task API requests and answers, shared by every transport: requests waiting
/// by id, acknowledgements restarting the wait, duplicates and strangers dropped.
pub struct TaskApi {
    timeout: Duration,
    inner: Mutex<Correlation>,
    pub metrics: TaskApiMetrics,
}

impl TaskApi {
    /// `timeout`: the wait for an answer, restarted by every acknowledgement.
    pub fn new(timeout: Duration) -> Self {
        TaskApi {
            timeout: timeout.max(Duration::from_millis(1)),
            inner: Mutex::new(Correlation::default()),
            metrics: TaskApiMetrics::default(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest an acknowledged request waits in all: twelve timeouts (60 s by default), so
    /// that a peer acknowledging forever cannot hold a request open forever.
    pub fn max_wait(&self) -> Duration {
        self.timeout * 12
    }

    /// Starts waiting for the answer to `request_id` (before the request is published).
    pub fn register(&self, request_id: CompactString) -> Waiter<'_> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().pending.insert(request_id.clone(), tx);
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        Waiter {
            api: self,
            request_id,
            rx,
        }
    }

    /// Takes one `ApiResponse` heard on `task_api_responses`.
    pub fn deliver(&self, response: &ApiResponse) -> Delivery {
        let mut inner = self.inner.lock();
        let outcome = match response.type_ {
            ApiResponse::TYPE_ACKNOWLEDGE => match inner.pending.get(&response.request_id) {
                Some(tx) => {
                    let _ = tx.send(Event::Ack);
                    Delivery::Acknowledged
                }
                None if inner.answered_set.contains(&response.request_id) => Delivery::Duplicate,
                None => Delivery::Unknown,
            },
            ApiResponse::TYPE_RESPONDING => match inner.pending.remove(&response.request_id) {
                Some(tx) => {
                    let _ = tx.send(Event::Answer(response.json_msg.clone()));
                    let inner = &mut *inner;
                    if inner.answered_set.insert(response.request_id.clone()) {
                        inner.answered.push_back(response.request_id.clone());
                    }
                    while inner.answered.len() > ANSWERED_MEMORY {
                        if let Some(old) = inner.answered.pop_front() {
                            inner.answered_set.remove(&old);
                        }
                    }
                    Delivery::Answered
                }
                None if inner.answered_set.contains(&response.request_id) => Delivery::Duplicate,
                None => Delivery::Unknown,
            },
            _ => Delivery::Invalid,
        };
        drop(inner);
        match outcome {
            Delivery::Answered => {
                self.metrics.answered.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Acknowledged => {}
            Delivery::Duplicate | Delivery::Unknown | Delivery::Invalid => {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    request_id = %response.request_id,
                    type_ = response.type_,
                    ?outcome,
                    "task API response dropped"
                );
            }
        }
        outcome
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }
}

/// A request waiting for its answer. Dropping it (timeout, or the HTTP client went away) forgets
/// the request: a later answer is then unknown.
pub struct Waiter<'a> {
    api: &'a TaskApi,
    request_id: CompactString,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Waiter<'_> {
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The answer's `json_msg`, or a timeout.
    pub async fn wait(mut self, request_type: &str) -> Result<String, LinkError> {
        let start = tokio::time::Instant::now();
        let limit = start + self.api.max_wait();
        let mut deadline = start + self.api.timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Event::Answer(json))) => return Ok(json),
                Ok(Some(Event::Ack)) => {
                    deadline = (tokio::time::Instant::now() + self.api.timeout).min(limit);
                }
                Ok(None) => {
                    return Err(LinkError::Closed {
                        request_type: request_type.into(),
                    });
                }
                Err(_) => {
                    self.api.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(LinkError::Timeout {
                        request_type: request_type.into(),
                        timeout_ms: self.api.timeout.as_millis() as u64,
                    });
                }
            }
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.api.inner.lock().pending.remove(&self.request_id);
    }
}

/// `--rmf-link none`: every command is refused.
pub struct Disabled {
    node_name: String,
    task_api: TaskApi,
}

impl Disabled {
    pub fn new(node_name: &str, task_timeout: Duration) -> Self {
        Disabled {
            node_name: node_name.into(),
            task_api: TaskApi::new(task_timeout),
        }
    }
}

impl RmfLink for Disabled {
    fn node_name(&self) -> &str {
        &self.node_name
    }

    fn publish(&self, _message: Outgoing) -> Result<(), LinkError> {
        Err(LinkError::Disabled)
    }

    fn task_api(&self) -> &TaskApi {
        &self.task_api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(type_: u8, id: &str, json: &str) -> ApiResponse {
        ApiResponse {
            type_,
            json_msg: json.into(),
            request_id: id.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answer_reaches_its_waiter_and_duplicates_are_dropped() {
        let api = TaskApi::new(Duration::from_secs(5));
        let waiter = api.register("r1".into());
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_RESPONDING, "r1", "{\"a\":1}")),
            Delivery::Answered
        );
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_RESPONDING, "r1", "{\"a\":2}")),
            Delivery::Duplicate
        );
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_ACKNOWLEDGE, "r1", "")),
            Delivery::Duplicate
        );
        assert_eq!(waiter.wait("x").await.unwrap(), "{\"a\":1}");
        assert_eq!(api.pending(), 0);
        assert_eq!(api.metrics.answered.load(Ordering::Relaxed), 1);
        assert_eq!(api.metrics.dropped.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_ids_and_uninitialized_types_are_dropped() {
        let api = TaskApi::new(Duration::from_secs(5));
        let waiter = api.register("mine".into());
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_RESPONDING, "other", "{}")),
            Delivery::Unknown
        );
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_ACKNOWLEDGE, "other", "")),
            Delivery::Unknown
        );
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_UNINITIALIZED, "mine", "{}")),
            Delivery::Invalid
        );
        assert_eq!(api.pending(), 1);
        assert_eq!(
            api.deliver(&response(
                ApiResponse::TYPE_RESPONDING,
                "mine",
                "{\"ok\":1}"
            )),
            Delivery::Answered
        );
        assert_eq!(waiter.wait("x").await.unwrap(), "{\"ok\":1}");
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_names_the_request_and_forgets_it() {
        let api = TaskApi::new(Duration::from_millis(300));
        let waiter = api.register("r".into());
        let t0 = tokio::time::Instant::now();
        let err = waiter.wait("cancel_task_request").await.unwrap_err();
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        assert_eq!(
            err.to_string(),
            "RMF gave no answer to cancel_task_request within 300 ms"
        );
        assert_eq!(api.pending(), 0);
        // A late answer is for nobody.
        assert_eq!(
            api.deliver(&response(ApiResponse::TYPE_RESPONDING, "r", "{}")),
            Delivery::Unknown
        );
        assert_eq!(api.metrics.timeouts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledgement_extends_the_wait() {
        let api = Arc::new(TaskApi::new(Duration::from_millis(100)));
        let feeder = {
            let api = api.clone();
            tokio::spawn(async move {
                // Acks at 80 and 160 ms keep the request alive past its 100 ms timeout; the
                // answer comes at 240 ms.
                for _ in 0..2 {
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    assert_eq!(
                        api.deliver(&response(ApiResponse::TYPE_ACKNOWLEDGE, "r", "")),
                        Delivery::Acknowledged
                    );
                }
                tokio::time::sleep(Duration::from_millis(80)).await;
                api.deliver(&response(
                    ApiResponse::TYPE_RESPONDING,
                    "r",
                    "late but fine",
                ))
            })
        };
        let t0 = tokio::time::Instant::now();
        let answer = api.register("r".into()).wait("x").await.unwrap();
        assert_eq!(answer, "late but fine");
        assert_eq!(t0.elapsed(), Duration::from_millis(240));
        assert_eq!(feeder.await.unwrap(), Delivery::Answered);
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledged_then_silent_times_out_one_timeout_after_the_ack() {
        let api = Arc::new(TaskApi::new(Duration::from_millis(100)));
        {
            let api = api.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(70)).await;
                api.deliver(&response(ApiResponse::TYPE_ACKNOWLEDGE, "r", ""));
            });
        }
        let t0 = tokio::time::Instant::now();
        let err = api.register("r".into()).wait("x").await.unwrap_err();
        assert!(matches!(
            err,
            LinkError::Timeout {
                timeout_ms: 100,
                ..
            }
        ));
        assert_eq!(t0.elapsed(), Duration::from_millis(170));
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledgements_cannot_extend_past_the_limit() {
        let api = Arc::new(TaskApi::new(Duration::from_millis(100)));
        {
            let api = api.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    api.deliver(&response(ApiResponse::TYPE_ACKNOWLEDGE, "r", ""));
                }
            });
        }
        let t0 = tokio::time::Instant::now();
        assert!(api.register("r".into()).wait("x").await.is_err());
        assert_eq!(t0.elapsed(), api.max_wait());
    }

    #[test]
    fn messages_carry_node_name_and_topics() {
        let link: Arc<dyn RmfLink> =
            Arc::new(loopback::Loopback::new("node_x", Duration::from_secs(1)));
        let door = link.request_door("main_door", DoorMode::MODE_OPEN).unwrap();
        assert_eq!(door.requester_id, "node_x");
        let lifts = link
            .request_lift(
                "lift1",
                "L2",
                LiftRequest::REQUEST_AGV_MODE,
                2,
                &["s2".into()],
            )
            .unwrap();
        assert_eq!(
            lifts
                .iter()
                .map(|l| l.session_id.as_str())
                .collect::<Vec<_>>(),
            ["node_x", "s2"]
        );
        let published = link.as_loopback().unwrap().published();
        let topics: Vec<_> = published.iter().map(|p| (p.topic, p.type_name)).collect();
        assert_eq!(
            topics,
            [
                ("adapter_door_requests", "rmf_door_msgs/msg/DoorRequest"),
                ("adapter_lift_requests", "rmf_lift_msgs/msg/LiftRequest"),
                ("adapter_lift_requests", "rmf_lift_msgs/msg/LiftRequest"),
            ]
        );
        assert_eq!(published[0].message["requested_mode"]["value"], 2);
    }

    #[test]
    fn disabled_link_refuses() {
        let link: Arc<dyn RmfLink> = Arc::new(Disabled::new("n", Duration::from_secs(1)));
        assert!(matches!(
            link.reset_fire_alarm_trigger(),
            Err(LinkError::Disabled)
        ));
    }
}
