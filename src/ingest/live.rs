//! Live RMF topics as a [`Source`]: the topics rmf-dash subscribes to on a ROS 2 graph (RMF.md
//! section 3, with their QoS), and the decoding of the serialized messages a transport takes
//! from them.
//!
//! The transport (`crate::ros2`, behind the `ros2` feature) only takes serialized messages and
//! stamps them with their receive time; this module decodes them with the same per-topic
//! [`TopicDecoder`] a recording uses (one decoding path for live and recorded data). Live links
//! carry no schema, so the built-in definitions of the configured release are used, strictly:
//! a message of the other release's layout is a clear [`DecodeError::ReleaseMismatch`], never a
//! misdecoded record.
//!
//! Logical time of live data = receive time, made strictly increasing here (two messages taken
//! in the same nanosecond keep their order).

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use rmf_dash_dataflows::model::Record;

use super::cdr::RmfRelease;
use super::decode::{DecodeError, ReleasePolicy, TopicDecoder};
use super::source::{Sample, Source, SourceError};
use crate::rmf_link::TaskApi;

/// Durability of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Volatile,
    /// Only where every publisher is transient local: a transient-local reader does not match a
    /// volatile writer.
    TransientLocal,
}

/// One subscribed topic: name, ROS type, QoS (reliable, keep last `depth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveTopic {
    /// As RMF's nodes use it: relative names resolve in the node's namespace; `/fleet_states`
    /// is absolute in RMF.
    pub topic: &'static str,
    pub type_name: &'static str,
    pub depth: usize,
    pub durability: Durability,
}

const fn topic(
    topic: &'static str,
    type_name: &'static str,
    depth: usize,
    durability: Durability,
) -> LiveTopic {
    LiveTopic {
        topic,
        type_name,
        depth,
        durability,
    }
}

use Durability::{TransientLocal, Volatile};

/// What rmf-dash subscribes to (RMF.md section 3). The JSON mirrors of the fleet adapters'
/// websocket exist from Kilted on; subscribing on older releases costs nothing.
pub const LIVE_TOPICS: &[LiveTopic] = &[
    topic(
        "/fleet_states",
        "rmf_fleet_msgs/msg/FleetState",
        100,
        Volatile,
    ),
    topic("door_states", "rmf_door_msgs/msg/DoorState", 100, Volatile),
    topic("lift_states", "rmf_lift_msgs/msg/LiftState", 100, Volatile),
    topic(
        "dispenser_states",
        "rmf_dispenser_msgs/msg/DispenserState",
        10,
        Volatile,
    ),
    topic(
        "ingestor_states",
        "rmf_ingestor_msgs/msg/IngestorState",
        10,
        Volatile,
    ),
    topic(
        "map",
        "rmf_building_map_msgs/msg/BuildingMap",
        1,
        TransientLocal,
    ),
    topic(
        "beacon_state",
        "rmf_fleet_msgs/msg/BeaconState",
        100,
        Volatile,
    ),
    topic("alert", "rmf_task_msgs/msg/Alert", 10, Volatile),
    topic(
        "delivery_alert_request",
        "rmf_fleet_msgs/msg/DeliveryAlert",
        10,
        Volatile,
    ),
    topic("fire_alarm_trigger", "std_msgs/msg/Bool", 10, Volatile),
    topic(
        "task_api_responses",
        "rmf_task_msgs/msg/ApiResponse",
        10,
        TransientLocal,
    ),
    topic(
        "fleet_state_update",
        "std_msgs/msg/String",
        10,
        TransientLocal,
    ),
    topic(
        "fleet_log_update",
        "std_msgs/msg/String",
        100,
        TransientLocal,
    ),
    topic(
        "task_state_update",
        "std_msgs/msg/String",
        10,
        TransientLocal,
    ),
    topic(
        "task_log_update",
        "std_msgs/msg/String",
        100,
        TransientLocal,
    ),
];

/// One serialized message as a transport took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Index into the topic list the source was built with.
    pub topic: usize,
    /// Receive time, ns since the Unix epoch.
    pub receive_ns: u64,
    /// Encapsulation header + CDR body.
    pub data: Vec<u8>,
}

/// The policy of a live link configured for `release`: its layout, strictly.
pub fn live_policy(release: RmfRelease) -> ReleasePolicy {
    ReleasePolicy {
        preferred: release,
        strict: true,
    }
}

enum Channel {
    Ready(Box<TopicDecoder>),
    /// The decoder could not be built (reported with the first message).
    Failed(Option<DecodeError>),
}

/// Live messages decoded into samples. Task API answers also go to the link's [`TaskApi`].
pub struct LiveSource {
    rx: Receiver<RawMessage>,
    topics: Vec<Arc<str>>,
    channels: Vec<Channel>,
    task_api: Option<Arc<TaskApi>>,
    last_time: u64,
}

impl LiveSource {
    /// `topics`: (name as received, ROS type) by index of [`RawMessage::topic`].
    pub fn new(
        topics: &[(String, String)],
        release: RmfRelease,
        rx: Receiver<RawMessage>,
        task_api: Option<Arc<TaskApi>>,
    ) -> Self {
        let policy = live_policy(release);
        let channels = topics
            .iter()
            .map(|(topic, type_name)| {
                match TopicDecoder::new(topic, type_name, "cdr", None, policy) {
                    Ok(d) => Channel::Ready(Box::new(d)),
                    Err(e) => Channel::Failed(Some(e)),
                }
            })
            .collect();
        LiveSource {
            rx,
            topics: topics.iter().map(|(t, _)| Arc::from(t.as_str())).collect(),
            channels,
            task_api,
            last_time: 0,
        }
    }

    /// Strictly increasing receive times.
    fn stamp(&mut self, receive_ns: u64) -> u64 {
        self.last_time = receive_ns.max(self.last_time + 1);
        self.last_time
    }
}

impl Source for LiveSource {
    /// Blocks until a message arrives; `None` once the transport has stopped.
    fn next_sample(&mut self) -> Option<Result<Sample, SourceError>> {
        loop {
            let m = self.rx.recv().ok()?;
            let log_time = self.stamp(m.receive_ns);
            let Some(channel) = self.channels.get_mut(m.topic) else {
                continue;
            };
            let result = match channel {
                Channel::Ready(d) => d.record(&m.data),
                Channel::Failed(error) => match error.take() {
                    Some(error) => Err(error),
                    None => continue,
                },
            };
            return Some(match result {
                Ok(record) => {
                    if let (Record::ApiResponse(r), Some(api)) = (&record, &self.task_api) {
                        api.deliver(r);
                    }
                    Ok(Sample {
                        log_time,
                        topic: self.topics[m.topic].clone(),
                        record,
                    })
                }
                Err(error) => Err(SourceError::Decode { log_time, error }),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::cdr::typed;
    use rmf_dash_dataflows::model::ros::{FleetState, RobotState};

    fn fleet(release: RmfRelease) -> Vec<u8> {
        let state = FleetState {
            name: "tinyRobot".into(),
            robots: vec![RobotState {
                name: "r1".into(),
                battery_percent: 87.5,
                ..Default::default()
            }],
        };
        typed::encode(&state, release)
    }

    fn source(release: RmfRelease) -> (std::sync::mpsc::Sender<RawMessage>, LiveSource) {
        let (tx, rx) = std::sync::mpsc::channel();
        let topics = [(
            "/fleet_states".to_string(),
            "rmf_fleet_msgs/msg/FleetState".to_string(),
        )];
        (tx, LiveSource::new(&topics, release, rx, None))
    }

    #[test]
    fn decodes_the_configured_layout_with_increasing_times() {
        let (tx, mut s) = source(RmfRelease::Kilted);
        for _ in 0..2 {
            tx.send(RawMessage {
                topic: 0,
                receive_ns: 1_000,
                data: fleet(RmfRelease::Kilted),
            })
            .unwrap();
        }
        drop(tx);
        let a = s.next_sample().unwrap().unwrap();
        let b = s.next_sample().unwrap().unwrap();
        assert_eq!((a.log_time, b.log_time), (1_000, 1_001));
        let Record::FleetState(f) = a.record else {
            panic!("not a fleet state: {:?}", a.record);
        };
        assert_eq!(f.robots[0].battery_percent, 87.5);
        assert!(s.next_sample().is_none());
    }

    /// `ros/` (the interface packages the `ros2` feature is built and tested with) says exactly
    /// what the built-in definitions say.
    #[test]
    fn the_ros_interface_packages_are_the_builtin_definitions() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ros");
        let mut checked = 0;
        for package in std::fs::read_dir(&root).unwrap() {
            let package = package.unwrap().path();
            let pkg = package.file_name().unwrap().to_string_lossy().to_string();
            for file in std::fs::read_dir(package.join("msg")).unwrap() {
                let file = file.unwrap().path();
                let ty = file.file_stem().unwrap().to_string_lossy().to_string();
                let text = std::fs::read_to_string(&file).unwrap();
                let name = format!("{pkg}/{ty}");
                assert_eq!(
                    Some(text.as_str()),
                    crate::ingest::builtin::definition(&name, RmfRelease::Kilted),
                    "{name}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 35);
        let jazzy = root.join("rmf_fleet_msgs/layouts/jazzy/msg/RobotMode.msg");
        assert_eq!(
            std::fs::read_to_string(jazzy).ok().as_deref(),
            crate::ingest::builtin::definition("rmf_fleet_msgs/RobotMode", RmfRelease::Jazzy)
        );
    }

    #[test]
    fn the_other_layout_is_a_mismatch_not_a_record() {
        let (tx, mut s) = source(RmfRelease::Kilted);
        tx.send(RawMessage {
            topic: 0,
            receive_ns: 5,
            data: fleet(RmfRelease::Jazzy),
        })
        .unwrap();
        let e = crate::error::chain(&s.next_sample().unwrap().unwrap_err());
        assert!(
            e.contains("has the jazzy layout, but this topic uses the kilted layout"),
            "{e}"
        );
    }
}
