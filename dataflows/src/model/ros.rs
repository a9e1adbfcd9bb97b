//! The RMF ROS 2 messages rmf-dash uses, as plain serde structs.
//!
//! Field names and order are those of the `.msg` definitions (RMF.md section 2), so that the JSON
//! of a typed value equals the JSON the schema-driven generic decoder produces for the same bytes.
//! Strings are [`CompactString`]: names, levels and models fit inline, which keeps decoding free of
//! most allocations.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// `builtin_interfaces/Time`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// Milliseconds since the epoch of the clock that stamped it (negative seconds clamp to 0).
    pub fn millis(&self) -> u64 {
        (self.sec.max(0) as u64) * 1000 + u64::from(self.nanosec / 1_000_000)
    }

    pub fn from_nanos(ns: u64) -> Self {
        Time {
            sec: (ns / 1_000_000_000).min(i32::MAX as u64) as i32,
            nanosec: (ns % 1_000_000_000) as u32,
        }
    }
}

/// `rmf_door_msgs/DoorMode`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct DoorMode {
    pub value: u32,
}

impl DoorMode {
    pub const MODE_CLOSED: u32 = 0;
    pub const MODE_MOVING: u32 = 1;
    pub const MODE_OPEN: u32 = 2;
    pub const MODE_OFFLINE: u32 = 3;
    pub const MODE_UNKNOWN: u32 = 4;
}

/// `rmf_door_msgs/DoorState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DoorState {
    pub door_time: Time,
    pub door_name: CompactString,
    pub current_mode: DoorMode,
}

/// `rmf_door_msgs/DoorRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DoorRequest {
    pub request_time: Time,
    pub requester_id: CompactString,
    pub door_name: CompactString,
    pub requested_mode: DoorMode,
}

/// `rmf_lift_msgs/LiftState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiftState {
    pub lift_time: Time,
    pub lift_name: CompactString,
    pub available_floors: Vec<CompactString>,
    pub current_floor: CompactString,
    pub destination_floor: CompactString,
    pub door_state: u8,
    pub motion_state: u8,
    pub available_modes: Vec<u8>,
    pub current_mode: u8,
    pub session_id: CompactString,
}

impl LiftState {
    pub const DOOR_CLOSED: u8 = 0;
    pub const DOOR_MOVING: u8 = 1;
    pub const DOOR_OPEN: u8 = 2;
    pub const MOTION_STOPPED: u8 = 0;
    pub const MOTION_UP: u8 = 1;
    pub const MOTION_DOWN: u8 = 2;
    pub const MOTION_UNKNOWN: u8 = 3;
    pub const MODE_UNKNOWN: u8 = 0;
    pub const MODE_HUMAN: u8 = 1;
    pub const MODE_AGV: u8 = 2;
    pub const MODE_FIRE: u8 = 3;
    pub const MODE_OFFLINE: u8 = 4;
    pub const MODE_EMERGENCY: u8 = 5;
}

/// `rmf_lift_msgs/LiftRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiftRequest {
    pub lift_name: CompactString,
    pub request_time: Time,
    pub session_id: CompactString,
    pub request_type: u8,
    pub destination_floor: CompactString,
    pub door_state: u8,
}

impl LiftRequest {
    pub const REQUEST_END_SESSION: u8 = 0;
    pub const REQUEST_AGV_MODE: u8 = 1;
    pub const REQUEST_HUMAN_MODE: u8 = 2;
    pub const DOOR_CLOSED: u8 = 0;
    pub const DOOR_OPEN: u8 = 2;
}

/// `rmf_dispenser_msgs/DispenserState` and `rmf_ingestor_msgs/IngestorState` (same layout).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkcellState {
    pub time: Time,
    pub guid: CompactString,
    pub mode: i32,
    pub request_guid_queue: Vec<CompactString>,
    pub seconds_remaining: f32,
}

impl WorkcellState {
    pub const IDLE: i32 = 0;
    pub const BUSY: i32 = 1;
    pub const OFFLINE: i32 = 2;
}

/// `rmf_dispenser_msgs/DispenserRequestItem`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispenserRequestItem {
    pub type_guid: CompactString,
    pub quantity: i32,
    pub compartment_name: CompactString,
}

/// `rmf_dispenser_msgs/DispenserRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispenserRequest {
    pub time: Time,
    pub request_guid: CompactString,
    pub target_guid: CompactString,
    pub transporter_type: CompactString,
    pub items: Vec<DispenserRequestItem>,
}

/// `rmf_dispenser_msgs/DispenserResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DispenserResult {
    pub time: Time,
    pub request_guid: CompactString,
    pub source_guid: CompactString,
    pub status: u8,
}

/// `rmf_fleet_msgs/RobotMode`. `performing_action` exists from rmf_internal_msgs 3.4.1 (Kilted,
/// main) on; it is `None` when decoded with the Humble/Jazzy layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RobotMode {
    pub mode: u32,
    pub mode_request_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performing_action: Option<CompactString>,
}

impl RobotMode {
    pub const MODE_IDLE: u32 = 0;
    pub const MODE_CHARGING: u32 = 1;
    pub const MODE_MOVING: u32 = 2;
    pub const MODE_PAUSED: u32 = 3;
    pub const MODE_WAITING: u32 = 4;
    pub const MODE_EMERGENCY: u32 = 5;
    pub const MODE_GOING_HOME: u32 = 6;
    pub const MODE_DOCKING: u32 = 7;
    pub const MODE_ADAPTER_ERROR: u32 = 8;
    pub const MODE_CLEANING: u32 = 9;
    pub const MODE_PERFORMING_ACTION: u32 = 10;
    pub const MODE_ACTION_COMPLETED: u32 = 11;
}

/// `rmf_fleet_msgs/Location`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub t: Time,
    pub x: f32,
    pub y: f32,
    pub yaw: f32,
    pub obey_approach_speed_limit: bool,
    pub approach_speed_limit: f32,
    pub level_name: CompactString,
    pub index: u64,
}

/// `rmf_fleet_msgs/RobotState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RobotState {
    pub name: CompactString,
    pub model: CompactString,
    pub task_id: CompactString,
    pub seq: u64,
    pub mode: RobotMode,
    pub battery_percent: f32,
    pub location: Location,
    pub path: Vec<Location>,
}

/// `rmf_fleet_msgs/FleetState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetState {
    pub name: CompactString,
    pub robots: Vec<RobotState>,
}

/// `rmf_fleet_msgs/BeaconState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BeaconState {
    pub id: CompactString,
    pub online: bool,
    pub category: CompactString,
    pub activated: bool,
    pub level: CompactString,
}

/// A `uint32 value` wrapper: `DeliveryAlertCategory`, `DeliveryAlertTier`, `DeliveryAlertAction`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumValue {
    pub value: u32,
}

/// `rmf_fleet_msgs/DeliveryAlert`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAlert {
    pub id: CompactString,
    pub category: EnumValue,
    pub tier: EnumValue,
    pub task_id: CompactString,
    pub action: EnumValue,
    pub message: String,
}

/// `rmf_fleet_msgs/MutexGroupManualRelease`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MutexGroupManualRelease {
    pub release_mutex_groups: Vec<CompactString>,
    pub fleet: CompactString,
    pub robot: CompactString,
}

/// `rmf_task_msgs/ApiRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    pub json_msg: String,
    pub request_id: CompactString,
}

/// `rmf_task_msgs/ApiResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiResponse {
    #[serde(rename = "type")]
    pub type_: u8,
    pub json_msg: String,
    pub request_id: CompactString,
}

impl ApiResponse {
    pub const TYPE_UNINITIALIZED: u8 = 0;
    pub const TYPE_ACKNOWLEDGE: u8 = 1;
    pub const TYPE_RESPONDING: u8 = 2;
}

/// `rmf_task_msgs/AlertParameter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertParameter {
    pub name: CompactString,
    pub value: String,
}

/// `rmf_task_msgs/Alert`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: CompactString,
    pub title: String,
    pub subtitle: String,
    pub message: String,
    pub display: bool,
    pub tier: u8,
    pub responses_available: Vec<CompactString>,
    pub alert_parameters: Vec<AlertParameter>,
    pub task_id: CompactString,
}

impl Alert {
    pub const TIER_INFO: u8 = 0;
    pub const TIER_WARNING: u8 = 1;
    pub const TIER_ERROR: u8 = 2;
}

/// `rmf_task_msgs/AlertResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertResponse {
    pub id: CompactString,
    pub response: CompactString,
}

/// `rmf_building_map_msgs/Param`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: CompactString,
    #[serde(rename = "type")]
    pub type_: u32,
    pub value_int: i32,
    pub value_float: f32,
    pub value_string: String,
    pub value_bool: bool,
}

/// `rmf_building_map_msgs/GraphNode`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    pub x: f32,
    pub y: f32,
    pub name: CompactString,
    pub params: Vec<Param>,
}

/// `rmf_building_map_msgs/GraphEdge`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub v1_idx: u32,
    pub v2_idx: u32,
    pub params: Vec<Param>,
    pub edge_type: u8,
}

/// `rmf_building_map_msgs/Graph`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub name: CompactString,
    pub vertices: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub params: Vec<Param>,
}

/// `rmf_building_map_msgs/AffineImage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AffineImage {
    pub name: CompactString,
    pub x_offset: f32,
    pub y_offset: f32,
    pub yaw: f32,
    pub scale: f32,
    pub encoding: CompactString,
    pub data: Vec<u8>,
}

/// `rmf_building_map_msgs/Place`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub name: CompactString,
    pub x: f32,
    pub y: f32,
    pub yaw: f32,
    pub position_tolerance: f32,
    pub yaw_tolerance: f32,
}

/// `rmf_building_map_msgs/Door`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Door {
    pub name: CompactString,
    pub v1_x: f32,
    pub v1_y: f32,
    pub v2_x: f32,
    pub v2_y: f32,
    pub door_type: u8,
    pub motion_range: f32,
    pub motion_direction: i32,
}

/// `rmf_building_map_msgs/Level`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub name: CompactString,
    pub elevation: f32,
    pub images: Vec<AffineImage>,
    pub places: Vec<Place>,
    pub doors: Vec<Door>,
    pub nav_graphs: Vec<Graph>,
    pub wall_graph: Graph,
}

/// `rmf_building_map_msgs/Lift`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lift {
    pub name: CompactString,
    pub levels: Vec<CompactString>,
    pub doors: Vec<Door>,
    pub wall_graph: Graph,
    pub ref_x: f32,
    pub ref_y: f32,
    pub ref_yaw: f32,
    pub width: f32,
    pub depth: f32,
}

/// `rmf_building_map_msgs/BuildingMap`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildingMap {
    pub name: CompactString,
    pub levels: Vec<Level>,
    pub lifts: Vec<Lift>,
}

/// `std_msgs/Bool`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bool {
    pub data: bool,
}

/// `std_msgs/String`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdString {
    pub data: String,
}
