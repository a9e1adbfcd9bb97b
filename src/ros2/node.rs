//! The r2r node thread: one thread owns the node, spins it, moves every serialized message it
//! takes to the [`LiveSource`] and publishes the queued commands.
//!
//! r2r hands each subscription's messages through a channel of 10 that drops on overflow; the
//! thread empties every subscription after each `spin_once` (which takes at most one message per
//! subscription), so none is dropped there. Commands are published from this thread too (an r2r
//! node is not shared between threads), at most one spin (5 ms) after they were queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use r2r::{QosProfile, qos::DurabilityPolicy};

use super::{INCOMING_CAPACITY, OUTGOING_CAPACITY, Ros2Config, Ros2Error, Ros2Link};
use crate::ingest::cdr::{RmfRelease, typed};
use crate::ingest::live::{Durability, LIVE_TOPICS, LiveSource, RawMessage};
use crate::rmf_link::{Outgoing, TaskApi};

/// How long one spin waits for messages.
const SPIN: Duration = Duration::from_millis(5);

/// The topics rmf-dash publishes on, with RMF's QoS (RMF.md section 3): (topic, type, depth,
/// transient local).
const PUBLISHED: &[(&str, &str, usize, bool)] = &[
    (
        "adapter_door_requests",
        "rmf_door_msgs/msg/DoorRequest",
        10,
        false,
    ),
    (
        "adapter_lift_requests",
        "rmf_lift_msgs/msg/LiftRequest",
        100,
        true,
    ),
    (
        "task_api_requests",
        "rmf_task_msgs/msg/ApiRequest",
        10,
        true,
    ),
    (
        "alert_response",
        "rmf_task_msgs/msg/AlertResponse",
        10,
        true,
    ),
    (
        "delivery_alert_response",
        "rmf_fleet_msgs/msg/DeliveryAlert",
        10,
        true,
    ),
    ("fire_alarm_trigger", "std_msgs/msg/Bool", 10, true),
    (
        "mutex_group_manual_release",
        "rmf_fleet_msgs/msg/MutexGroupManualRelease",
        10,
        true,
    ),
];

fn qos(depth: usize, transient_local: bool) -> QosProfile {
    let q = QosProfile::default().keep_last(depth).reliable();
    if transient_local {
        q.durability(DurabilityPolicy::TransientLocal)
    } else {
        q.volatile()
    }
}

/// A message's serialized form (the project's own CDR writer; the layout of `release`).
fn encode(message: &Outgoing, release: RmfRelease) -> Vec<u8> {
    match message {
        Outgoing::DoorRequest(m) => typed::encode(m, release),
        Outgoing::LiftRequest(m) => typed::encode(m, release),
        Outgoing::ApiRequest(m) => typed::encode(m, release),
        Outgoing::AlertResponse(m) => typed::encode(m, release),
        Outgoing::DeliveryAlertResponse(m) => typed::encode(m, release),
        Outgoing::FireAlarmTrigger(m) => typed::encode(m, release),
        Outgoing::MutexGroupManualRelease(m) => typed::encode(m, release),
    }
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The running node thread.
pub struct NodeThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Ready = Result<Vec<(String, String)>, String>;

impl NodeThread {
    /// Starts the node and waits until its subscriptions and publishers exist.
    pub fn start(config: &Ros2Config) -> Result<(Self, Arc<Ros2Link>, LiveSource), Ros2Error> {
        let (raw_tx, raw_rx) = sync_channel::<RawMessage>(INCOMING_CAPACITY);
        let (out_tx, out_rx) = sync_channel::<Outgoing>(OUTGOING_CAPACITY);
        let (ready_tx, ready_rx) = sync_channel::<Ready>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name("rmf-dash-ros2".into())
                .spawn(move || run(&config, &stop, raw_tx, out_rx, ready_tx))?
        };
        let node_error = |message: String| Ros2Error::Node {
            node: config.node_name.clone(),
            message,
        };
        let topics = match ready_rx.recv() {
            Ok(Ok(topics)) => topics,
            Ok(Err(message)) => {
                let _ = thread.join();
                return Err(node_error(message));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(node_error("the node thread ended while starting".into()));
            }
        };
        let task_api = Arc::new(TaskApi::new(config.task_timeout));
        let link = Arc::new(Ros2Link::new(
            &config.node_name,
            config.release,
            task_api.clone(),
            out_tx,
        ));
        let source = LiveSource::new(&topics, config.release, raw_rx, Some(task_api));
        Ok((
            NodeThread {
                stop,
                thread: Some(thread),
            },
            link,
            source,
        ))
    }

    /// Stops spinning and destroys the node (its subscriptions and publishers leave the graph).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    config: &Ros2Config,
    stop: &AtomicBool,
    raw_tx: SyncSender<RawMessage>,
    out_rx: Receiver<Outgoing>,
    ready_tx: SyncSender<Ready>,
) {
    let setup = || -> Result<_, String> {
        let ctx = r2r::Context::create().map_err(|e| format!("creating the ROS 2 context: {e}"))?;
        let mut node = r2r::Node::create(ctx, &config.node_name, "")
            .map_err(|e| format!("creating the node: {e}"))?;
        let mut subscriptions = Vec::with_capacity(LIVE_TOPICS.len());
        let mut topics = Vec::with_capacity(LIVE_TOPICS.len());
        for t in LIVE_TOPICS {
            let q = qos(t.depth, t.durability == Durability::TransientLocal);
            let s = node
                .subscribe_raw(t.topic, t.type_name, q)
                .map_err(|e| format!("subscribing to {} ({}): {e}", t.topic, t.type_name))?;
            subscriptions.push(s);
            let name = if t.topic.starts_with('/') {
                t.topic.to_string()
            } else {
                format!("/{}", t.topic)
            };
            topics.push((name, t.type_name.to_string()));
        }
        let mut publishers = Vec::with_capacity(PUBLISHED.len());
        for (topic, type_name, depth, tl) in PUBLISHED {
            let p = node
                .create_publisher_untyped(topic, type_name, qos(*depth, *tl))
                .map_err(|e| format!("publishing on {topic} ({type_name}): {e}"))?;
            publishers.push((*topic, p));
        }
        Ok((node, subscriptions, topics, publishers))
    };
    let (mut node, mut subscriptions, topics, publishers) = match setup() {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready_tx.send(Err(e));
            return;
        }
    };
    if ready_tx.send(Ok(topics)).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        node.spin_once(SPIN);
        let receive_ns = unix_ns();
        for (topic, s) in subscriptions.iter_mut().enumerate() {
            while let Some(Some(data)) = s.next().now_or_never() {
                let m = RawMessage {
                    topic,
                    receive_ns,
                    data,
                };
                if raw_tx.send(m).is_err() {
                    return;
                }
            }
        }
        while let Ok(message) = out_rx.try_recv() {
            let topic = message.topic();
            let Some((_, p)) = publishers.iter().find(|(t, _)| *t == topic) else {
                tracing::error!(topic, "no publisher for this topic");
                continue;
            };
            if let Err(e) = p.publish_raw(&encode(&message, config.release)) {
                tracing::warn!(topic, error = %e, "publishing failed");
            }
        }
    }
}
