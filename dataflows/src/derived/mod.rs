//! The derived events: what rmf-dash computes from what RMF publishes.
//!
//! Each event is one file with its `//!` meaning, its `Config` (defaults, unknown fields
//! refused), its `build` and its tests, plus one line in [`registry`]. The engine builds every
//! registered event; the hub and the store route the output by room. See `dataflows/README.md`.

#[cfg(test)]
pub(crate) mod builders;
pub mod config;
pub mod device_health;
pub mod door_flapping;
pub mod door_held_open;
pub mod fleet_throughput;
pub mod latest_state;
pub mod lift_occupant;
pub mod logs;
pub mod reference;
pub mod robot_battery_low;
pub mod robot_battery_low_on_task;
pub mod robot_health;
pub mod robot_stuck;
pub mod robot_task;
pub mod rooms;
pub mod task_alerts;
pub mod task_queue;

use serde::{Deserialize, Serialize};

pub use config::{Config, ConfigError, NoConfig, Section, Spec, Typed};
pub use rooms::Rooms;

use crate::model::input::*;
use crate::ops::parts::{Part, Parts};
use crate::prelude::*;

/// One output record: a room (also the socket.io room) and its JSON value. A state room holds the
/// one record present; a stream room receives every inserted record as an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Output {
    pub room: String,
    pub value: Payload,
}

impl Output {
    pub fn new(room: String, value: Payload) -> Self {
        Output { room, value }
    }

    pub fn json(room: String, value: &serde_json::Value) -> Self {
        Output {
            room,
            value: Payload::of(value),
        }
    }
}

/// How a room's records are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Sticky: a subscriber gets the present value at once, then every change.
    State,
    /// Live: every inserted record is an event; retractions are not delivered.
    Stream,
}

/// What the store keeps of an event's output (besides the present value of every room, which
/// restore needs, and the tables of tasks, logs and alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// The present value per room only.
    Latest,
    /// Every change (insertions and retractions), with its time.
    History,
    /// Every inserted record, with its time (a stream's records are never retracted).
    Stream,
}

impl Persistence {
    /// Whether the store keeps a change with this `diff` in the output history.
    pub fn keeps(self, diff: Diff) -> bool {
        match self {
            Persistence::Latest => false,
            Persistence::History => true,
            Persistence::Stream => diff > 0,
        }
    }
}

/// A registered derived event.
#[derive(Clone, Copy)]
pub struct Descriptor {
    /// `<subject>_<condition>[_<window>]`.
    pub name: &'static str,
    /// Room template, `{...}` for entity names.
    pub room: &'static str,
    pub kind: RoomKind,
    pub persistence: Persistence,
    /// The inputs it reads (the fields of [`Inputs`], and the payload kinds it takes).
    pub inputs: &'static [&'static str],
    /// Its `[derived.<section>]` and the type it is read as; the lookback (what a restore must
    /// replay to rebuild its state) follows from the configured values ([`Section::lookback_ms`]).
    pub config: Spec,
    /// A robot logic run in the shared robot operator ([`robot_part`]): robot samples are the
    /// busiest input, and every event that reads them per sample shares one exchange and one
    /// lookup. `None` for the other events.
    pub robot: Option<RobotPart>,
    pub build: for<'s> fn(&Inputs<'s>, &Config) -> Coll<'s, Output>,
}

impl std::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Descriptor")
            .field("name", &self.name)
            .field("room", &self.room)
            .field("kind", &self.kind)
            .field("section", &self.config.section)
            .finish()
    }
}

/// Every derived event, one line each.
pub fn registry() -> Vec<Descriptor> {
    vec![
        latest_state::DOOR_STATE,
        latest_state::LIFT_STATE,
        latest_state::DISPENSER_STATE,
        latest_state::INGESTOR_STATE,
        latest_state::FLEET_STATE,
        latest_state::TASK_STATE,
        latest_state::BUILDING_MAP,
        latest_state::FIRE_ALARM_TRIGGER,
        latest_state::BEACONS,
        latest_state::ALERT_REQUESTS,
        latest_state::ALERT_RESPONSES,
        latest_state::DELIVERY_ALERTS,
        device_health::DOOR,
        device_health::LIFT,
        device_health::DISPENSER,
        device_health::INGESTOR,
        logs::TASK_LOG,
        logs::FLEET_LOG,
        robot_health::ROBOT_HEALTH,
        robot_battery_low::DESCRIPTOR,
        robot_battery_low_on_task::DESCRIPTOR,
        robot_stuck::DESCRIPTOR,
        robot_task::DESCRIPTOR,
        door_held_open::DESCRIPTOR,
        door_flapping::DESCRIPTOR,
        lift_occupant::DESCRIPTOR,
        task_alerts::DESCRIPTOR,
        task_queue::DESCRIPTOR,
        fleet_throughput::THROUGHPUT_1M,
        fleet_throughput::THROUGHPUT_15M,
    ]
}

/// The typed input collections (upserts keyed by entity name; logs appended).
#[derive(Clone)]
pub struct Inputs<'s> {
    pub doors: Coll<'s, (Name, DeviceSample)>,
    pub lifts: Coll<'s, (Name, LiftSample)>,
    pub dispensers: Coll<'s, (Name, DeviceSample)>,
    pub ingestors: Coll<'s, (Name, DeviceSample)>,
    /// Keyed `fleet/robot`; both sources (ROS and fleet-adapter JSON) in one collection.
    pub robots: Coll<'s, (Name, RobotSample)>,
    /// `fleet_state` JSON payloads by fleet name.
    pub fleets: Coll<'s, (Name, Payload)>,
    pub tasks: Coll<'s, (Name, TaskSample)>,
    pub task_logs: Coll<'s, (Name, LogBatch)>,
    pub fleet_logs: Coll<'s, (Name, LogBatch)>,
    /// Keyed by kind for the singleton and id-keyed payload inputs.
    pub payloads: Coll<'s, (InputKey, Payload)>,
    pub alerts: Coll<'s, (Name, AlertSample)>,
    /// Intermediate collections several events use, built once.
    pub(crate) shared: Shared<'s>,
}

/// A robot event's logic for the shared robot operator, built from the site's configuration. Its
/// records are its event's final outputs, or intermediate ones (a key in `room`, a JSON value)
/// that its event joins further.
pub type RobotPart = fn(&Config) -> Box<dyn Part<Name, RobotSample, Output>>;

/// Collections built once for several events (see [`robot_stream`]).
#[derive(Clone, Default)]
pub(crate) struct Shared<'s> {
    robot_stream: std::cell::OnceCell<RobotStream<'s>>,
    pub(crate) fleet_events: std::cell::OnceCell<Coll<'s, (Name, fleet_throughput::FleetEvent)>>,
}

/// Everything computed per robot sample, by one keyed operator.
#[derive(Clone)]
pub(crate) struct RobotStream<'s> {
    /// The records of the registered robot parts, by the part's index in `parts`.
    pub records: Coll<'s, (u16, Output)>,
    /// The events whose [`Descriptor::robot`] part runs here, in order.
    pub parts: Vec<&'static str>,
    /// `(task_id, robot)`: each robot's current task id (robot_task).
    pub task_ids: Coll<'s, (Name, Name)>,
    /// `(robot, (status, level))` (lift_occupant).
    pub occupants: Coll<'s, (Name, lift_occupant::RobotView)>,
    /// Status changes as fleet events (fleet_throughput).
    pub statuses: Coll<'s, (Name, fleet_throughput::FleetEvent)>,
}

/// What the robot logics produce, in one stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum RobotOut {
    Part(u16, Output),
    TaskId(Name, Name),
    Occupant(Name, lift_occupant::RobotView),
    Status(Name, fleet_throughput::FleetEvent),
}

/// Robot samples are the busiest input (10 Hz per robot): every logic that reads them runs in one
/// keyed operator (one exchange, one lookup per sample): the robot parts of the registered events
/// ([`Descriptor::robot`], an `ops::parts::Parts` list) and the three intermediate products
/// other events join (current task ids, lift views, status changes; `ops::keyed::{Both,
/// MapOut}`). Each event takes its part of the common output.
fn robot_stream<'s>(inputs: &Inputs<'s>, config: &Config) -> RobotStream<'s> {
    use crate::ops::keyed::{Both, KeyedProcess, MapOut};
    inputs
        .shared
        .robot_stream
        .get_or_init(|| {
            let (names, parts): (Vec<&'static str>, Vec<_>) = registry()
                .into_iter()
                .filter_map(|d| d.robot.map(|part| (d.name, part(config))))
                .unzip();
            let logic = Both(
                MapOut(Parts::new(parts), |(i, o)| RobotOut::Part(i, o)),
                Both(
                    MapOut(robot_task::TaskIds, |(t, r)| RobotOut::TaskId(t, r)),
                    Both(
                        MapOut(lift_occupant::RobotLogic, |(r, v)| RobotOut::Occupant(r, v)),
                        MapOut(fleet_throughput::StatusChanges, |(f, e)| {
                            RobotOut::Status(f, e)
                        }),
                    ),
                ),
            );
            let out = inputs.robots.clone().keyed_process("Robots", logic);
            RobotStream {
                records: out.clone().flat_map(|o| match o {
                    RobotOut::Part(i, o) => Some((i, o)),
                    _ => None,
                }),
                parts: names,
                task_ids: out.clone().flat_map(|o| match o {
                    RobotOut::TaskId(t, r) => Some((t, r)),
                    _ => None,
                }),
                occupants: out.clone().flat_map(|o| match o {
                    RobotOut::Occupant(r, v) => Some((r, v)),
                    _ => None,
                }),
                statuses: out.flat_map(|o| match o {
                    RobotOut::Status(f, e) => Some((f, e)),
                    _ => None,
                }),
            }
        })
        .clone()
}

/// The records of `event`'s robot part (empty when it has none).
pub(crate) fn robot_part<'s>(
    inputs: &Inputs<'s>,
    config: &Config,
    event: &str,
) -> Coll<'s, Output> {
    let stream = robot_stream(inputs, config);
    let index = stream
        .parts
        .iter()
        .position(|n| *n == event)
        .map(|i| i as u16);
    stream
        .records
        .flat_map(move |(i, o)| (Some(i) == index).then_some(o))
}

const PARTS: u64 = 11;

impl<'s> Inputs<'s> {
    /// Splits the engine's single input collection by kind (one pass, no copies).
    pub fn split(all: Coll<'s, Input>) -> Inputs<'s> {
        Self::split_with(all, None)
    }

    /// Like [`Inputs::split`], with the robot samples (the busiest input) from their own
    /// collection when given, skipping the partition and the enum of the other inputs.
    pub fn split_with(
        all: Coll<'s, Input>,
        robots: Option<Coll<'s, (Name, RobotSample)>>,
    ) -> Inputs<'s> {
        use timely::container::CapacityContainerBuilder as B;
        use timely::dataflow::operators::core::Partition;
        type Part = (((Kind, Name), InputValue), Time, Diff);
        let mut parts = all
            .inner
            .partition::<B<Vec<Part>>, _, _>(PARTS, |(((kind, name), value), t, r): Part| {
                let part = match kind {
                    Kind::Door => 0,
                    Kind::Lift => 1,
                    Kind::Dispenser => 2,
                    Kind::Ingestor => 3,
                    Kind::Robot(_) => 4,
                    Kind::Fleet => 5,
                    Kind::Task => 6,
                    Kind::TaskLog => 7,
                    Kind::FleetLog => 8,
                    Kind::Alert => 10,
                    Kind::BuildingMap
                    | Kind::Beacon
                    | Kind::AlertResponse
                    | Kind::DeliveryAlert
                    | Kind::FireAlarm => 9,
                };
                (part, (((kind, name), value), t, r))
            })
            .into_iter()
            .map(AsCollection::as_collection);
        let mut next = || {
            parts
                .next()
                .unwrap_or_else(|| unreachable!("partition yields {PARTS} streams"))
        };
        let device = |c: Coll<'s, Input>| {
            c.flat_map(|((_, name), v)| match v {
                InputValue::Device(d) => Some((name, d)),
                _ => None,
            })
        };
        let doors = device(next());
        let lifts = next().flat_map(|((_, name), v)| match v {
            InputValue::Lift(l) => Some((name, l)),
            _ => None,
        });
        let dispensers = device(next());
        let ingestors = device(next());
        let robot_part = next();
        let robots = robots.unwrap_or_else(|| {
            robot_part.flat_map(|((_, name), v)| match v {
                InputValue::Robot(r) => Some((name, r)),
                _ => None,
            })
        });
        let fleets = next().flat_map(|((_, name), v)| match v {
            InputValue::Payload(p) => Some((name, p)),
            _ => None,
        });
        let tasks = next().flat_map(|((_, name), v)| match v {
            InputValue::Task(t) => Some((name, *t)),
            _ => None,
        });
        let logs = |c: Coll<'s, Input>| {
            c.flat_map(|((_, name), v)| match v {
                InputValue::Log(l) => Some((name, l)),
                _ => None,
            })
        };
        let task_logs = logs(next());
        let fleet_logs = logs(next());
        let payloads = next().flat_map(|(key, v)| match v {
            InputValue::Payload(p) => Some((key, p)),
            _ => None,
        });
        let alerts = next().flat_map(|((_, name), v)| match v {
            InputValue::Alert(a) => Some((name, a)),
            _ => None,
        });
        Inputs {
            doors,
            lifts,
            dispensers,
            ingestors,
            robots,
            fleets,
            tasks,
            task_logs,
            fleet_logs,
            payloads,
            alerts,
            shared: Shared::default(),
        }
    }
}

/// Builds every registered event on `inputs`; their outputs in one collection.
pub fn build_all<'s>(inputs: &Inputs<'s>, config: &Config) -> Coll<'s, Output> {
    let mut outputs = registry().into_iter().map(|d| (d.build)(inputs, config));
    let first = outputs
        .next()
        .unwrap_or_else(|| unreachable!("the registry is not empty"));
    first.concatenate(outputs)
}

/// Renders a room template with entity names (`{name}`, `{fleet}`, `{robot}`, `{guid}`, `{id}`
/// are positional: filled in order).
pub fn room(template: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    let mut names = names.iter();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(names.next().copied().unwrap_or_default());
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_fill_templates_in_order() {
        assert_eq!(
            room("/robots/{fleet}/{robot}/health", &["f", "r"]),
            "/robots/f/r/health"
        );
        assert_eq!(room("/building_map", &[]), "/building_map");
    }

    #[test]
    fn registry_names_are_unique_and_rooms_start_with_a_slash() {
        let reg = registry();
        let mut names: Vec<&str> = reg.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), reg.len());
        assert!(reg.iter().all(|d| d.room.starts_with('/')));
    }

    #[test]
    fn a_section_has_one_type_and_a_room_one_kind_and_persistence() {
        let mut sections = std::collections::BTreeMap::new();
        let mut rooms = std::collections::BTreeMap::new();
        for d in registry() {
            let ty = *sections
                .entry(d.config.section)
                .or_insert(d.config.type_id());
            assert_eq!(ty, d.config.type_id(), "[derived.{}]", d.config.section);
            let (kind, persistence) = *rooms.entry(d.room).or_insert((d.kind, d.persistence));
            assert_eq!((kind, persistence), (d.kind, d.persistence), "{}", d.room);
            assert!(!d.inputs.is_empty(), "{} names its inputs", d.name);
        }
    }

    #[test]
    fn a_site_section_sets_its_values_and_the_rest_keep_their_defaults() {
        let config = Config::from_sections(&serde_json::json!({
            "door_held_open": {"open_ms": 5000},
            "fleet_throughput": {"window_15m_ms": 600000},
        }))
        .expect("valid sections");
        assert_eq!(config.get(&door_held_open::CONFIG).open_ms, 5000);
        let throughput = config.get(&fleet_throughput::CONFIG);
        assert_eq!(
            (throughput.window_1m_ms, throughput.window_15m_ms),
            (60_000, 600_000)
        );
        assert_eq!(config.get(&door_flapping::CONFIG).window_ms, 300_000);
        let lookback = |spec: &Spec| config.parsed(spec).map(|p| p.lookback_ms);
        assert_eq!(lookback(&door_held_open::DESCRIPTOR.config), Some(5000));
        assert_eq!(
            lookback(&fleet_throughput::THROUGHPUT_1M.config),
            Some(600_000)
        );
        assert_eq!(lookback(&latest_state::DOOR_STATE.config), Some(0));
    }

    #[test]
    fn a_wrong_section_or_key_is_named_in_the_error() {
        let err = |v| Config::from_sections(&v).err().map(|e| e.to_string());
        let e = err(serde_json::json!({"door_held_open": {"open_sec": 5}}));
        assert!(
            e.as_deref().is_some_and(|e| e
                .starts_with("[derived.door_held_open] key `open_sec`: unknown field `open_sec`")),
            "{e:?}"
        );
        let e = err(serde_json::json!({"robot_stuck": {"window_ms": "soon"}}));
        assert!(
            e.as_deref().is_some_and(
                |e| e.starts_with("[derived.robot_stuck] key `window_ms`: invalid type")
            ),
            "{e:?}"
        );
        let e = err(serde_json::json!({"door_flap": {}}));
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with("[derived.door_flap]: no registered event")),
            "{e:?}"
        );
        assert_eq!(
            err(serde_json::json!([])).as_deref(),
            Some("[derived] must be a table of sections, one per event")
        );
    }
}
