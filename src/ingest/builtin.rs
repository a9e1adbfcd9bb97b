//! Built-in `.msg` definitions of the RMF messages (RMF.md section 2), for sources that carry no
//! schema (rosbag2 sqlite3 recordings, live links), in both layouts: Humble/Jazzy and Kilted/main
//! differ in `rmf_fleet_msgs/RobotMode`. [`schema_text`] assembles a root type and its
//! dependencies in rosbag2's MCAP schema format, which the trace generator embeds.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use super::cdr::RmfRelease;
use super::ros2msg::{BaseType, MsgSchema, parse_definition};

const ROBOT_MODE_JAZZY: &str = "uint32 mode
uint64 mode_request_id

uint32 MODE_IDLE=0
uint32 MODE_CHARGING=1
uint32 MODE_MOVING=2
uint32 MODE_PAUSED=3
uint32 MODE_WAITING=4
uint32 MODE_EMERGENCY=5
uint32 MODE_GOING_HOME=6
uint32 MODE_DOCKING=7
uint32 MODE_ADAPTER_ERROR=8
uint32 MODE_CLEANING=9
";

const ROBOT_MODE_KILTED: &str = "uint32 mode
uint64 mode_request_id
string performing_action

uint32 MODE_IDLE=0
uint32 MODE_CHARGING=1
uint32 MODE_MOVING=2
uint32 MODE_PAUSED=3
uint32 MODE_WAITING=4
uint32 MODE_EMERGENCY=5
uint32 MODE_GOING_HOME=6
uint32 MODE_DOCKING=7
uint32 MODE_ADAPTER_ERROR=8
uint32 MODE_CLEANING=9
uint32 MODE_PERFORMING_ACTION=10
uint32 MODE_ACTION_COMPLETED=11
";

/// Definitions that are the same in every supported release: (normalized name, text).
const COMMON: &[(&str, &str)] = &[
    ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec\n"),
    ("std_msgs/String", "string data\n"),
    ("std_msgs/Bool", "bool data\n"),
    (
        "rmf_door_msgs/DoorMode",
        "uint32 value\n\nuint32 MODE_CLOSED=0\nuint32 MODE_MOVING=1\nuint32 MODE_OPEN=2\nuint32 MODE_OFFLINE=3\nuint32 MODE_UNKNOWN=4\n",
    ),
    (
        "rmf_door_msgs/DoorState",
        "builtin_interfaces/Time door_time\nstring door_name\nDoorMode current_mode\n",
    ),
    (
        "rmf_door_msgs/DoorRequest",
        "builtin_interfaces/Time request_time\nstring requester_id\nstring door_name\nDoorMode requested_mode\n",
    ),
    (
        "rmf_lift_msgs/LiftState",
        "builtin_interfaces/Time lift_time\nstring lift_name\nstring[] available_floors\nstring current_floor\nstring destination_floor\nuint8 door_state\nuint8 motion_state\nuint8[] available_modes\nuint8 current_mode\nstring session_id\n\nuint8 DOOR_CLOSED=0\nuint8 DOOR_MOVING=1\nuint8 DOOR_OPEN=2\nuint8 MOTION_STOPPED=0\nuint8 MOTION_UP=1\nuint8 MOTION_DOWN=2\nuint8 MOTION_UNKNOWN=3\nuint8 MODE_UNKNOWN=0\nuint8 MODE_HUMAN=1\nuint8 MODE_AGV=2\nuint8 MODE_FIRE=3\nuint8 MODE_OFFLINE=4\nuint8 MODE_EMERGENCY=5\n",
    ),
    (
        "rmf_lift_msgs/LiftRequest",
        "string lift_name\nbuiltin_interfaces/Time request_time\nstring session_id\nuint8 request_type\nstring destination_floor\nuint8 door_state\n\nuint8 REQUEST_END_SESSION=0\nuint8 REQUEST_AGV_MODE=1\nuint8 REQUEST_HUMAN_MODE=2\nuint8 DOOR_CLOSED=0\nuint8 DOOR_OPEN=2\n",
    ),
    (
        "rmf_dispenser_msgs/DispenserState",
        "builtin_interfaces/Time time\nstring guid\nint32 mode\nstring[] request_guid_queue\nfloat32 seconds_remaining\n\nint32 IDLE=0\nint32 BUSY=1\nint32 OFFLINE=2\n",
    ),
    (
        "rmf_dispenser_msgs/DispenserRequestItem",
        "string type_guid\nint32 quantity\nstring compartment_name\n",
    ),
    (
        "rmf_dispenser_msgs/DispenserRequest",
        "builtin_interfaces/Time time\nstring request_guid\nstring target_guid\nstring transporter_type\nDispenserRequestItem[] items\n",
    ),
    (
        "rmf_dispenser_msgs/DispenserResult",
        "builtin_interfaces/Time time\nstring request_guid\nstring source_guid\nuint8 status\n\nuint8 ACKNOWLEDGED=0\nuint8 SUCCESS=1\nuint8 FAILED=2\n",
    ),
    (
        "rmf_ingestor_msgs/IngestorState",
        "builtin_interfaces/Time time\nstring guid\nint32 mode\nstring[] request_guid_queue\nfloat32 seconds_remaining\n\nint32 IDLE=0\nint32 BUSY=1\nint32 OFFLINE=2\n",
    ),
    (
        "rmf_fleet_msgs/Location",
        "builtin_interfaces/Time t\nfloat32 x\nfloat32 y\nfloat32 yaw\n\nbool obey_approach_speed_limit false\nfloat32 approach_speed_limit\n\nstring level_name\nuint64 index\n",
    ),
    (
        "rmf_fleet_msgs/RobotState",
        "string name\nstring model\nstring task_id\nuint64 seq\nRobotMode mode\nfloat32 battery_percent\nLocation location\nLocation[] path\n",
    ),
    (
        "rmf_fleet_msgs/FleetState",
        "string name\nRobotState[] robots\n",
    ),
    (
        "rmf_fleet_msgs/BeaconState",
        "string id\nbool online\nstring category\nbool activated\nstring level\n",
    ),
    (
        "rmf_fleet_msgs/DeliveryAlertCategory",
        "uint32 value\n\nuint32 MISSING=0\nuint32 WRONG=1\nuint32 OBSTRUCTED=2\nuint32 CANCELLED=3\n",
    ),
    (
        "rmf_fleet_msgs/DeliveryAlertTier",
        "uint32 value\n\nuint32 WARNING=0\nuint32 ERROR=1\n",
    ),
    (
        "rmf_fleet_msgs/DeliveryAlertAction",
        "uint32 value\n\nuint32 WAITING=0\nuint32 CANCEL=1\nuint32 OVERRIDE=2\nuint32 RESUME=3\n",
    ),
    (
        "rmf_fleet_msgs/DeliveryAlert",
        "string id\nDeliveryAlertCategory category\nDeliveryAlertTier tier\nstring task_id\nDeliveryAlertAction action\nstring message\n",
    ),
    (
        "rmf_fleet_msgs/MutexGroupManualRelease",
        "string[] release_mutex_groups\nstring fleet\nstring robot\n",
    ),
    (
        "rmf_task_msgs/ApiRequest",
        "string json_msg\nstring request_id\n",
    ),
    (
        "rmf_task_msgs/ApiResponse",
        "uint8 TYPE_UNINITIALIZED=0\nuint8 TYPE_ACKNOWLEDGE=1\nuint8 TYPE_RESPONDING=2\nuint8 type\nstring json_msg\nstring request_id\n",
    ),
    (
        "rmf_task_msgs/AlertParameter",
        "string name\nstring value\n",
    ),
    (
        "rmf_task_msgs/Alert",
        "string id\nstring title\nstring subtitle\nstring message\nbool display true\nuint8 tier\nstring[] responses_available\nAlertParameter[] alert_parameters\nstring task_id\n\nuint8 TIER_INFO=0\nuint8 TIER_WARNING=1\nuint8 TIER_ERROR=2\n",
    ),
    (
        "rmf_task_msgs/AlertResponse",
        "string id\nstring response\n",
    ),
    (
        "rmf_building_map_msgs/Param",
        "string name\nuint32 type\nint32 value_int\nfloat32 value_float\nstring value_string\nbool value_bool\n\nuint32 TYPE_UNDEFINED=0\nuint32 TYPE_STRING=1\nuint32 TYPE_INT=2\nuint32 TYPE_DOUBLE=3\nuint32 TYPE_BOOL=4\n",
    ),
    (
        "rmf_building_map_msgs/GraphNode",
        "float32 x\nfloat32 y\nstring name\nParam[] params\n",
    ),
    (
        "rmf_building_map_msgs/GraphEdge",
        "uint32 v1_idx\nuint32 v2_idx\nParam[] params\nuint8 edge_type\n\nuint8 EDGE_TYPE_BIDIRECTIONAL=0\nuint8 EDGE_TYPE_UNIDIRECTIONAL=1\n",
    ),
    (
        "rmf_building_map_msgs/Graph",
        "string name\nGraphNode[] vertices\nGraphEdge[] edges\nParam[] params\n",
    ),
    (
        "rmf_building_map_msgs/AffineImage",
        "string name\nfloat32 x_offset\nfloat32 y_offset\nfloat32 yaw\nfloat32 scale\nstring encoding\nuint8[] data\n",
    ),
    (
        "rmf_building_map_msgs/Place",
        "string name\nfloat32 x\nfloat32 y\nfloat32 yaw\nfloat32 position_tolerance\nfloat32 yaw_tolerance\n",
    ),
    (
        "rmf_building_map_msgs/Door",
        "string name\nfloat32 v1_x\nfloat32 v1_y\nfloat32 v2_x\nfloat32 v2_y\nuint8 door_type\nfloat32 motion_range\nint32 motion_direction\n\nuint8 DOOR_TYPE_UNDEFINED=0\nuint8 DOOR_TYPE_SINGLE_SLIDING=1\nuint8 DOOR_TYPE_DOUBLE_SLIDING=2\nuint8 DOOR_TYPE_SINGLE_TELESCOPE=3\nuint8 DOOR_TYPE_DOUBLE_TELESCOPE=4\nuint8 DOOR_TYPE_SINGLE_SWING=5\nuint8 DOOR_TYPE_DOUBLE_SWING=6\n",
    ),
    (
        "rmf_building_map_msgs/Level",
        "string name\nfloat32 elevation\nAffineImage[] images\nPlace[] places\nDoor[] doors\nGraph[] nav_graphs\nGraph wall_graph\n",
    ),
    (
        "rmf_building_map_msgs/Lift",
        "string name\nstring[] levels\nDoor[] doors\nGraph wall_graph\nfloat32 ref_x\nfloat32 ref_y\nfloat32 ref_yaw\nfloat32 width\nfloat32 depth\n",
    ),
    (
        "rmf_building_map_msgs/BuildingMap",
        "string name\nLevel[] levels\nLift[] lifts\n",
    ),
];

const SEPARATOR: &str =
    "================================================================================";

/// The `.msg` text of one type (normalized name `pkg/Type`) in a release.
pub fn definition(name: &str, release: RmfRelease) -> Option<&'static str> {
    if name == "rmf_fleet_msgs/RobotMode" {
        return Some(match release {
            RmfRelease::Jazzy => ROBOT_MODE_JAZZY,
            RmfRelease::Kilted => ROBOT_MODE_KILTED,
        });
    }
    COMMON.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Every type name with a built-in definition.
pub fn type_names() -> impl Iterator<Item = &'static str> {
    COMMON
        .iter()
        .map(|(n, _)| *n)
        .chain(std::iter::once("rmf_fleet_msgs/RobotMode"))
}

/// The full schema text of `name` (root text, then each dependency after a separator line and
/// `MSG: pkg/Type`), as rosbag2 stores it in MCAP files. `None` for an unknown type.
pub fn schema_text(name: &str, release: RmfRelease) -> Option<String> {
    let name = super::ros2msg::normalize_type_name(name).ok()?;
    let mut text = definition(&name, release)?.to_string();
    let mut seen = BTreeSet::from([name.clone()]);
    let mut queue = vec![name];
    while let Some(current) = queue.pop() {
        let def = parse_definition(&current, definition(&current, release)?).ok()?;
        for field in &def.fields {
            if let BaseType::Message(dep) = &field.ty.base
                && seen.insert(dep.clone())
            {
                text.push_str(&format!(
                    "{SEPARATOR}\nMSG: {dep}\n{}",
                    definition(dep, release)?
                ));
                queue.push(dep.clone());
            }
        }
    }
    Some(text)
}

/// The parsed built-in schema of `name` in `release`, cached.
pub fn schema(name: &str, release: RmfRelease) -> Option<&'static MsgSchema> {
    static CACHE: OnceLock<Vec<(String, RmfRelease, MsgSchema)>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        let mut v = Vec::new();
        for n in type_names() {
            for r in RmfRelease::ALL {
                if let Some(s) = schema_text(n, r).and_then(|t| MsgSchema::parse(n, &t).ok()) {
                    v.push((n.to_string(), r, s));
                }
            }
        }
        v
    });
    let name = super::ros2msg::normalize_type_name(name).ok()?;
    all.iter()
        .find(|(n, r, _)| *n == name && *r == release)
        .map(|(_, _, s)| s)
}

/// Whether a type's wire layout differs between RMF releases.
pub fn depends_on_release(name: &str) -> bool {
    match (
        schema(name, RmfRelease::Jazzy),
        schema(name, RmfRelease::Kilted),
    ) {
        (Some(a), Some(b)) => !a.same_layout(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_in_both_releases() {
        for n in type_names() {
            for r in RmfRelease::ALL {
                assert!(schema(n, r).is_some(), "{n} {r}");
            }
        }
    }

    #[test]
    fn only_robot_mode_and_its_containers_depend_on_the_release() {
        let dependent: Vec<&str> = type_names().filter(|n| depends_on_release(n)).collect();
        assert_eq!(
            dependent,
            [
                "rmf_fleet_msgs/RobotState",
                "rmf_fleet_msgs/FleetState",
                "rmf_fleet_msgs/RobotMode"
            ]
        );
    }

    #[test]
    fn schema_text_has_rosbag2_dependency_sections() {
        let t = schema_text("rmf_door_msgs/msg/DoorState", RmfRelease::Jazzy).unwrap();
        assert!(t.starts_with("builtin_interfaces/Time door_time\n"));
        assert!(t.contains(&format!(
            "{SEPARATOR}\nMSG: rmf_door_msgs/DoorMode\nuint32 value\n"
        )));
        assert!(t.contains(&format!(
            "{SEPARATOR}\nMSG: builtin_interfaces/Time\nint32 sec\n"
        )));
        let fleet = schema_text("rmf_fleet_msgs/FleetState", RmfRelease::Kilted).unwrap();
        assert!(fleet.contains("string performing_action"));
    }
}
