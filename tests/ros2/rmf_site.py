"""A stand-in RMF site on a real ROS 2 graph (rclpy), for tests/ros2.rs.

One node that:
- publishes a BuildingMap on `map` (transient local) at start, before rmf-dash exists;
- publishes DoorState, LiftState, DispenserState, IngestorState, FleetState (the layout of the RMF
  messages built in this environment) and the Kilted JSON mirrors `fleet_state_update` and
  `task_state_update` every 100 ms, with
  the fixed values the test expects (`--no-states` to skip);
- prints every DoorRequest / LiftRequest it hears as one JSON line `{"topic", "message"}`;
- acts as the task dispatcher: answers each ApiRequest on `task_api_requests` with an
  ACKNOWLEDGE then a RESPONDING (unless its JSON holds "silent"), printing the request.

Prints `ready` once every publisher and subscription exists. Stops on SIGTERM/stdin EOF, or after
--seconds.

Usage: python rmf_site.py [--no-states] [--seconds N]
"""

import json
import sys
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from builtin_interfaces.msg import Time
from rmf_building_map_msgs.msg import AffineImage, BuildingMap, Graph, GraphNode, Level
from rmf_dispenser_msgs.msg import DispenserState
from rmf_door_msgs.msg import DoorMode, DoorRequest, DoorState
from rmf_fleet_msgs.msg import FleetState, Location, RobotMode, RobotState
from rmf_ingestor_msgs.msg import IngestorState
from rmf_lift_msgs.msg import LiftRequest, LiftState
from rmf_task_msgs.msg import ApiRequest, ApiResponse
from std_msgs.msg import String


def qos(depth, transient_local=False):
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE,
    )


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def building_map():
    return BuildingMap(
        name="test_site",
        levels=[
            Level(
                name="L1",
                elevation=0.0,
                images=[
                    AffineImage(
                        name="L1_plan",
                        x_offset=1.5,
                        y_offset=-2.0,
                        yaw=0.0,
                        scale=0.05,
                        encoding="png",
                        data=bytes([137, 80, 78, 71, 13, 10, 26, 10]),
                    )
                ],
                nav_graphs=[
                    Graph(
                        name="0",
                        vertices=[GraphNode(x=1.0, y=2.0, name="pantry")],
                    )
                ],
                wall_graph=Graph(name="walls"),
            )
        ],
    )


def fleet_state(robots=1):
    mode = RobotMode(mode=RobotMode.MODE_MOVING, mode_request_id=7)
    if hasattr(mode, "performing_action"):
        mode.performing_action = "delivery"
    return FleetState(
        name="tinyRobot",
        robots=[
            RobotState(
                name=f"tinyRobot{i + 1}",
                model="TinyRobot",
                task_id="patrol.dispatch-0001",
                seq=42 + i,
                mode=mode,
                battery_percent=87.5,
                location=Location(
                    t=Time(sec=1700000000, nanosec=500),
                    x=10.25,
                    y=-3.5,
                    yaw=1.5,
                    level_name="L1",
                    index=3,
                ),
                path=[],
            )
            for i in range(robots)
        ],
    )


FLEET_JSON = {
    "type": "fleet_state_update",
    "data": {
        "name": "tinyRobot",
        "robots": {
            "tinyRobot1": {
                "name": "tinyRobot1",
                "status": "working",
                "task_id": "patrol.dispatch-0001",
                "unix_millis_time": 1700000000000,
                "location": {"map": "L1", "x": 10.25, "y": -3.5, "yaw": 1.5},
                "battery": 0.875,
                "issues": [],
            }
        },
    },
}


TASK_JSON = {
    "type": "task_state_update",
    "data": {
        "booking": {"id": "patrol.dispatch-0001", "unix_millis_request_time": 1700000000000},
        "category": "patrol",
        "assigned_to": {"group": "tinyRobot", "name": "tinyRobot1"},
        "status": "underway",
        "dispatch": {"status": "dispatched", "errors": []},
    },
}


def main():
    args = sys.argv[1:]
    states = "--no-states" not in args
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 120.0

    rclpy.init()
    node = rclpy.create_node("rmf_site")
    map_pub = node.create_publisher(BuildingMap, "map", qos(1, transient_local=True))
    map_pub.publish(building_map())

    door_pub = node.create_publisher(DoorState, "door_states", qos(100))
    lift_pub = node.create_publisher(LiftState, "lift_states", qos(100))
    dispenser_pub = node.create_publisher(DispenserState, "dispenser_states", qos(10))
    fleet_pub = node.create_publisher(FleetState, "/fleet_states", qos(100))
    ingestor_pub = node.create_publisher(IngestorState, "ingestor_states", qos(10))
    fleet_json_pub = node.create_publisher(String, "fleet_state_update", qos(10, transient_local=True))
    task_json_pub = node.create_publisher(String, "task_state_update", qos(10, transient_local=True))
    response_pub = node.create_publisher(ApiResponse, "task_api_responses", qos(10, transient_local=True))

    def on_door(m):
        out({"topic": "adapter_door_requests", "message": {
            "request_time": {"sec": m.request_time.sec, "nanosec": m.request_time.nanosec},
            "requester_id": m.requester_id,
            "door_name": m.door_name,
            "requested_mode": {"value": m.requested_mode.value},
        }})

    def on_lift(m):
        out({"topic": "adapter_lift_requests", "message": {
            "lift_name": m.lift_name,
            "request_time": {"sec": m.request_time.sec, "nanosec": m.request_time.nanosec},
            "session_id": m.session_id,
            "request_type": m.request_type,
            "destination_floor": m.destination_floor,
            "door_state": m.door_state,
        }})

    answered = set()

    def on_request(m):
        out({"topic": "task_api_requests", "message": {"json_msg": m.json_msg, "request_id": m.request_id}})
        if "silent" in m.json_msg or m.request_id in answered:
            return
        answered.add(m.request_id)
        request = json.loads(m.json_msg)
        response_pub.publish(ApiResponse(type=ApiResponse.TYPE_ACKNOWLEDGE, json_msg="", request_id=m.request_id))
        state = {
            "booking": {"id": "patrol.dispatch-00000000aa", "requester": request["request"].get("requester", "")},
            "category": request["request"]["category"],
            "status": "queued",
            "dispatch": {"status": "queued", "errors": []},
        }
        response_pub.publish(ApiResponse(
            type=ApiResponse.TYPE_RESPONDING,
            json_msg=json.dumps({"success": True, "state": state}),
            request_id=m.request_id,
        ))

    node.create_subscription(DoorRequest, "adapter_door_requests", on_door, qos(10))
    node.create_subscription(LiftRequest, "adapter_lift_requests", on_lift, qos(100, transient_local=True))
    node.create_subscription(ApiRequest, "task_api_requests", on_request, qos(10, transient_local=True))

    def publish_states():
        door_pub.publish(DoorState(
            door_time=Time(sec=1700000000, nanosec=5),
            door_name="main_door",
            current_mode=DoorMode(value=DoorMode.MODE_OPEN),
        ))
        lift_pub.publish(LiftState(
            lift_time=Time(sec=1700000001, nanosec=6),
            lift_name="Lift1",
            available_floors=["L1", "L2"],
            current_floor="L1",
            destination_floor="L2",
            door_state=LiftState.DOOR_CLOSED,
            motion_state=LiftState.MOTION_UP,
            available_modes=[1, 2],
            current_mode=LiftState.MODE_AGV,
            session_id="rmf_dash",
        ))
        dispenser_pub.publish(DispenserState(
            time=Time(sec=1700000002, nanosec=7),
            guid="coke_dispenser",
            mode=DispenserState.BUSY,
            request_guid_queue=["req-1"],
            seconds_remaining=2.5,
        ))
        ingestor_pub.publish(IngestorState(
            time=Time(sec=1700000003, nanosec=8),
            guid="trash_ingestor",
            mode=IngestorState.IDLE,
            request_guid_queue=[],
            seconds_remaining=0.0,
        ))
        fleet_pub.publish(fleet_state())
        fleet_json_pub.publish(String(data=json.dumps(FLEET_JSON)))
        task_json_pub.publish(String(data=json.dumps(TASK_JSON)))

    if states:
        node.create_timer(0.1, publish_states)

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    out("ready")
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
