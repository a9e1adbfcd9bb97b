//! Model records: the typed inputs of the dataflows, as decoded from RMF.
//!
//! `ros` holds the RMF ROS 2 messages; [`Record`] is one decoded input, classified by what it
//! means to rmf-dash (the same ROS type can mean different things on different topics).

pub mod api;
pub mod input;
pub mod ros;
pub mod shape;

use ros::*;

/// The fleet-adapter JSON updates (RMF.md section 5), from the `/_internal` websocket or the
/// Kilted `*_update` topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JsonKind {
    FleetStateUpdate,
    FleetLogUpdate,
    TaskStateUpdate,
    TaskLogUpdate,
}

impl JsonKind {
    pub const ALL: [JsonKind; 4] = [
        JsonKind::FleetStateUpdate,
        JsonKind::FleetLogUpdate,
        JsonKind::TaskStateUpdate,
        JsonKind::TaskLogUpdate,
    ];

    /// The `type` of the websocket frame, which is also the name of the Kilted topic.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonKind::FleetStateUpdate => "fleet_state_update",
            JsonKind::FleetLogUpdate => "fleet_log_update",
            JsonKind::TaskStateUpdate => "task_state_update",
            JsonKind::TaskLogUpdate => "task_log_update",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One decoded input.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    DoorState(DoorState),
    DoorRequest(DoorRequest),
    LiftState(LiftState),
    LiftRequest(LiftRequest),
    DispenserState(WorkcellState),
    IngestorState(WorkcellState),
    DispenserRequest(DispenserRequest),
    DispenserResult(DispenserResult),
    FleetState(FleetState),
    BeaconState(BeaconState),
    DeliveryAlertRequest(DeliveryAlert),
    DeliveryAlertResponse(DeliveryAlert),
    MutexGroupManualRelease(MutexGroupManualRelease),
    ApiRequest(ApiRequest),
    ApiResponse(ApiResponse),
    Alert(Alert),
    AlertResponse(AlertResponse),
    BuildingMap(Box<BuildingMap>),
    /// `fire_alarm_trigger`: true = alarm, false = reset.
    FireAlarmTrigger(bool),
    /// A fleet-adapter JSON update; `data` is the text of the frame's `data` object, exactly as
    /// received (it becomes the room payload unchanged).
    Json {
        kind: JsonKind,
        data: std::sync::Arc<str>,
    },
    /// Any other message, decoded generically.
    Other {
        type_name: String,
        value: serde_json::Value,
    },
}
