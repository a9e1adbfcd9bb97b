#!/usr/bin/env python3
"""Write rosbag2 recordings of RMF messages with `rosbags` plus the expected decoded JSON.

Usage: make_bags.py OUTDIR [--verify]

This is an independent-implementation check of rmf-dash's CDR decoder: the
bags are serialized by rosbags' own (pure Python) CDR serializer, never by our
Rust code. Previous outputs in OUTDIR are replaced.

Outputs:
  OUTDIR/jazzy_mcap/  OUTDIR/jazzy_db3/    RobotMode with the Humble/Jazzy layout
  OUTDIR/kilted_mcap/ OUTDIR/kilted_db3/   RobotMode with the Kilted layout
  OUTDIR/expected_jazzy.jsonl, OUTDIR/expected_kilted.jsonl
      one {"log_time", "topic", "type", "message"} object per message, in
      log-time order; float32 values are the shortest decimal that round-trips
      the float32; uint8[] values are plain arrays of numbers.

--verify reads every bag back with rosbags' Reader, deserializes each message
with a typestore built *only* from the schema text stored in the bag, and
checks the result equals the expected JSON files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.base import Nodetype

# --------------------------------------------------------------------------
# Message definitions (.msg text; field order is wire order). Constants are
# included where the real RMF definitions have them: they are not on the wire
# and a schema parser must skip them.
# --------------------------------------------------------------------------
ROBOT_MODE_JAZZY = """\
uint32 MODE_IDLE=0
uint32 MODE_CHARGING=1
uint32 MODE_MOVING=2
uint32 mode
uint64 mode_request_id
"""
ROBOT_MODE_KILTED = ROBOT_MODE_JAZZY + "string performing_action\n"

MSGS = {
    "rmf_door_msgs/msg/DoorMode": "uint32 MODE_CLOSED=0\nuint32 MODE_MOVING=1\n"
    "uint32 MODE_OPEN=2\nuint32 value\n",
    "rmf_door_msgs/msg/DoorState": "builtin_interfaces/Time door_time\nstring door_name\n"
    "DoorMode current_mode\n",
    "rmf_lift_msgs/msg/LiftState": """\
builtin_interfaces/Time lift_time
string lift_name
string[] available_floors
string current_floor
string destination_floor
uint8 door_state
uint8 motion_state
uint8[] available_modes
uint8 current_mode
string session_id
""",
    "rmf_dispenser_msgs/msg/DispenserState": "builtin_interfaces/Time time\nstring guid\n"
    "int32 mode\nstring[] request_guid_queue\nfloat32 seconds_remaining\n",
    "rmf_fleet_msgs/msg/Location": """\
builtin_interfaces/Time t
float32 x
float32 y
float32 yaw
bool obey_approach_speed_limit
float32 approach_speed_limit
string level_name
uint64 index
""",
    # rmf_fleet_msgs/msg/RobotMode is added per distro (see typestore()).
    "rmf_fleet_msgs/msg/RobotState": "string name\nstring model\nstring task_id\n"
    "uint64 seq\nRobotMode mode\nfloat32 battery_percent\nLocation location\nLocation[] path\n",
    "rmf_fleet_msgs/msg/FleetState": "string name\nRobotState[] robots\n",
    "rmf_building_map_msgs/msg/Param": """\
uint32 TYPE_UNDEFINED=0
uint32 TYPE_STRING=1
uint32 TYPE_INT=2
uint32 TYPE_DOUBLE=3
uint32 TYPE_BOOL=4
string name
uint32 type
int32 value_int
float32 value_float
string value_string
bool value_bool
""",
    "rmf_building_map_msgs/msg/GraphNode": "float32 x\nfloat32 y\nstring name\nParam[] params\n",
    "rmf_building_map_msgs/msg/GraphEdge": "uint32 v1_idx\nuint32 v2_idx\nParam[] params\n"
    "uint8 edge_type\n",
    "rmf_building_map_msgs/msg/Graph": "string name\nGraphNode[] vertices\nGraphEdge[] edges\n"
    "Param[] params\n",
    "rmf_building_map_msgs/msg/AffineImage": "string name\nfloat32 x_offset\nfloat32 y_offset\n"
    "float32 yaw\nfloat32 scale\nstring encoding\nuint8[] data\n",
    "rmf_building_map_msgs/msg/Place": "string name\nfloat32 x\nfloat32 y\nfloat32 yaw\n"
    "float32 position_tolerance\nfloat32 yaw_tolerance\n",
    "rmf_building_map_msgs/msg/Door": "string name\nfloat32 v1_x\nfloat32 v1_y\nfloat32 v2_x\n"
    "float32 v2_y\nuint8 door_type\nfloat32 motion_range\nint32 motion_direction\n",
    "rmf_building_map_msgs/msg/Level": "string name\nfloat32 elevation\nAffineImage[] images\n"
    "Place[] places\nDoor[] doors\nGraph[] nav_graphs\nGraph wall_graph\n",
    "rmf_building_map_msgs/msg/Lift": "string name\nstring[] levels\nDoor[] doors\n"
    "Graph wall_graph\nfloat32 ref_x\nfloat32 ref_y\nfloat32 ref_yaw\nfloat32 width\n"
    "float32 depth\n",
    "rmf_building_map_msgs/msg/BuildingMap": "string name\nLevel[] levels\nLift[] lifts\n",
}

# (distro, rosbags store whose builtins we use, rosbag2 metadata version)
DISTROS = {"jazzy": (Stores.ROS2_JAZZY, 8), "kilted": (Stores.ROS2_KILTED, 9)}
STORAGES = {"mcap": StoragePlugin.MCAP, "db3": StoragePlugin.SQLITE3}

T0 = 1_700_000_000_000_000_000  # first log time (ns); later ones add 0.1 s each
U64_MAX = 2**64 - 1
FLT_MAX = 3.4028234663852886e38
# Floats below avoid -0.0 (written "0.0 - x") and NaN/inf: JSON compares them poorly.


def typestore(distro: str):
    """The distro's builtin store plus our RMF types parsed from .msg text."""
    store = get_typestore(DISTROS[distro][0])
    mode = ROBOT_MODE_KILTED if distro == "kilted" else ROBOT_MODE_JAZZY
    types = {}
    for name, text in {**MSGS, "rmf_fleet_msgs/msg/RobotMode": mode}.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


# --------------------------------------------------------------------------
# Message content, as nested dicts in .msg field order.
# --------------------------------------------------------------------------
def t(sec: int, nanosec: int) -> dict:
    return {"sec": sec, "nanosec": nanosec}


def location(i: int, index: int) -> dict:
    return {"t": t(1_700_000_000 + i, 250_000_000 * (i % 4)), "x": 0.5 * i, "y": 0.0 - 1.25 * i,
            "yaw": 0.1, "obey_approach_speed_limit": i % 2 == 0,
            "approach_speed_limit": 0.5 if i % 2 == 0 else 0.0, "level_name": "L1", "index": index}


def robot(kilted: bool, i: int, path_len: int, seq: int, action: str) -> dict:
    mode = {"mode": 2, "mode_request_id": U64_MAX - 1 - i}
    if kilted:
        mode["performing_action"] = action
    return {"name": f"robot_{i}", "model": "TinyRobot Ω" if i == 1 else "deliveryRobot",
            "task_id": "" if i == 0 else f"task#{i}", "seq": seq, "mode": mode,
            "battery_percent": [99.5, 0.1, 1e-45][i % 3],
            "location": location(i, U64_MAX if i == 2 else i),
            "path": [location(10 * i + k, k) for k in range(path_len)]}


def param(name: str, typ: int, i: int = 0, f: float = 0.0, s: str = "", b: bool = False) -> dict:
    return {"name": name, "type": typ, "value_int": i, "value_float": f,
            "value_string": s, "value_bool": b}


def graph(name: str, n: int, with_params: bool) -> dict:
    params = [param("undefined", 0), param("dock_name", 1, s="dock #1 Tür-Ω ✓"),
              param("speed_limit_int", 2, i=-2147483648), param("speed", 3, f=-1.25),
              param("is_charger", 4, b=True)] if with_params else []
    return {"name": name,
            "vertices": [{"x": 0.5 * k, "y": 0.0 - 1.25 * k, "name": f"v{k}" if k else "",
                          "params": params if k == 0 else []} for k in range(n)],
            "edges": [{"v1_idx": k, "v2_idx": k + 1, "params": params[1:2], "edge_type": k % 3}
                      for k in range(n - 1)],
            "params": params[:1]}


def door(name: str) -> dict:
    return {"name": name, "v1_x": 0.5, "v1_y": -1.25, "v2_x": FLT_MAX, "v2_y": 1e-45,
            "door_type": 2, "motion_range": 0.1, "motion_direction": -1}


def building_map() -> dict:
    image = {"name": "L1_small", "x_offset": 0.5, "y_offset": -1.25, "yaw": 0.1, "scale": 0.05,
             "encoding": "png", "data": list(range(10))}
    big = {**image, "name": "L1_big", "encoding": "", "data": [(k * 37) % 256 for k in range(100)]}
    l1 = {"name": "L1", "elevation": 0.0, "images": [image, big],
          "places": [{"name": "pantry", "x": 12.75, "y": -3.5, "yaw": 0.1,
                      "position_tolerance": 0.5, "yaw_tolerance": 1e-45}],
          "doors": [door("main_door"), door("")], "nav_graphs": [graph("nav #0", 3, True)],
          "wall_graph": graph("", 0, False)}
    l2 = {"name": "L2 Tür-Ω ✓", "elevation": 3.5, "images": [], "places": [], "doors": [],
          "nav_graphs": [], "wall_graph": graph("walls", 2, False)}
    lift = {"name": "lift_1", "levels": ["L1", "L2 Tür-Ω ✓"], "doors": [door("lift_door")],
            "wall_graph": graph("", 0, False), "ref_x": 1.5, "ref_y": -2.25, "ref_yaw": 0.1,
            "width": 2.0, "depth": FLT_MAX}
    return {"name": "building Tür-Ω ✓", "levels": [l1, l2], "lifts": [lift]}


def messages(kilted: bool) -> list[tuple[str, str, dict]]:
    """(topic, type, content) in log-time order; log times are assigned by index."""
    door_t, lift_t = "rmf_door_msgs/msg/DoorState", "rmf_lift_msgs/msg/LiftState"
    disp_t, fleet_t = "rmf_dispenser_msgs/msg/DispenserState", "rmf_fleet_msgs/msg/FleetState"
    update = {"type": "fleet_state_update", "data": {"name": "tinyRobot", "robots": {
        "robot_1": {"battery": 0.5, "status": "Tür-Ω ✓ #1"}}}}
    return [
        ("/door_states", door_t, {"door_time": t(1_700_000_000, 999_999_999),
                                  "door_name": "main_door", "current_mode": {"value": 2}}),
        ("/lift_states", lift_t, {
            "lift_time": t(0, 0), "lift_name": "lift_1", "available_floors": [],
            "current_floor": "", "destination_floor": "", "door_state": 0, "motion_state": 0,
            "available_modes": [], "current_mode": 0, "session_id": ""}),
        ("/door_states", door_t, {"door_time": t(-5, 1), "door_name": "Tür-Ω ✓",
                                  "current_mode": {"value": 0}}),
        ("/dispenser_states", disp_t, {
            "time": t(1_700_000_001, 500_000_000), "guid": "dispenser_a", "mode": 1,
            "request_guid_queue": ["req-1", "req #2"], "seconds_remaining": 0.5}),
        ("/fleet_states", fleet_t, {"name": "empty_fleet", "robots": []}),
        ("/lift_states", lift_t, {
            "lift_time": t(1_700_000_002, 123_456_789), "lift_name": "lift_2",
            "available_floors": ["L1", "L2", "#3 roof"], "current_floor": "L1",
            "destination_floor": "#3 roof", "door_state": 2, "motion_state": 1,
            "available_modes": [1, 2, 255], "current_mode": 255, "session_id": "sess-Ω"}),
        ("/fleet_states", fleet_t, {"name": "tinyRobot",
                                    "robots": [robot(kilted, 0, 0, 0, "cleaning")]}),
        ("/door_states", door_t, {"door_time": t(-2147483648, 4294967295), "door_name": "",
                                  "current_mode": {"value": 4294967295}}),
        ("/map", "rmf_building_map_msgs/msg/BuildingMap", building_map()),
        ("/fleet_states", fleet_t, {"name": "fleet #3", "robots": [
            robot(kilted, 1, 1, U64_MAX, "delivery Tür-Ω ✓"),
            robot(kilted, 2, 2, 42, "cleaning"),
            robot(kilted, 3, 3, 2**63, "docking")]}),
        ("/dispenser_states", disp_t, {
            "time": t(1_700_000_003, 0), "guid": "", "mode": -1,
            "request_guid_queue": [], "seconds_remaining": FLT_MAX}),
        ("/fleet_state_update", "std_msgs/msg/String",
         {"data": json.dumps(update, ensure_ascii=False)}),
    ]


# --------------------------------------------------------------------------
# Generic conversion dict -> rosbags message object -> expected JSON value,
# driven by the typestore's field definitions (so .msg order is preserved).
# --------------------------------------------------------------------------
def fields(store, typename: str):
    return store.fielddefs[typename][1]


def build(store, typename: str, content: dict):
    """Instantiate a rosbags message object from a content dict."""
    names = [name for name, _ in fields(store, typename)]
    assert list(content) == names, f"{typename}: {list(content)} != {names}"
    return store.types[typename](**{
        name: build_value(store, desc, content[name]) for name, desc in fields(store, typename)})


def build_value(store, desc, value):
    kind, rest = desc
    if kind == Nodetype.NAME:
        return build(store, rest, value)
    if kind == Nodetype.BASE:
        return value
    sub = rest[0]  # SEQUENCE or ARRAY: ((kind, rest), count)
    if sub[0] == Nodetype.BASE and sub[1][0] != "string":
        base = sub[1][0]  # numeric sequences are numpy arrays in rosbags
        return np.array(value, dtype={"bool": np.bool_, "byte": np.uint8,
                                      "char": np.uint8}.get(base, base))
    return [build_value(store, sub, v) for v in value]


def to_json(store, typename: str, msg) -> dict:
    """Expected JSON of a message object: fields in .msg order, float32 shortest repr."""
    return {name: json_value(store, desc, getattr(msg, name))
            for name, desc in fields(store, typename)}


def json_value(store, desc, value):
    kind, rest = desc
    if kind == Nodetype.NAME:
        return to_json(store, rest, value)
    if kind == Nodetype.BASE:
        base = rest[0]
        if base == "float32":
            return float(str(np.float32(value)))  # numpy str = shortest round-trip
        if base == "float64":
            return float(value)
        if base == "bool":
            return bool(value)
        if base == "string":
            return str(value)
        return int(value)
    return [json_value(store, rest[0], v) for v in value]


# --------------------------------------------------------------------------
# Writing and verifying.
# --------------------------------------------------------------------------
def write_distro(outdir: Path, distro: str) -> None:
    store = typestore(distro)
    version = DISTROS[distro][1]
    msgs = [(T0 + i * 100_000_000, topic, typ, build(store, typ, content))
            for i, (topic, typ, content) in enumerate(messages(distro == "kilted"))]
    for suffix, plugin in STORAGES.items():
        with Writer(outdir / f"{distro}_{suffix}", version=version, storage_plugin=plugin) as w:
            conns = {}
            for log_time, topic, typ, msg in msgs:
                if topic not in conns:
                    conns[topic] = w.add_connection(topic, typ, typestore=store)
                w.write(conns[topic], log_time, store.serialize_cdr(msg, typ))
    with open(outdir / f"expected_{distro}.jsonl", "w", encoding="utf-8") as f:
        for log_time, topic, typ, msg in msgs:
            record = {"log_time": log_time, "topic": topic, "type": typ,
                      "message": to_json(store, typ, msg)}
            f.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")


def read_bag(path: Path) -> list[dict]:
    """Decode a bag using only the message definitions stored in it."""
    records = []
    with Reader(path) as reader:
        store = get_typestore(Stores.EMPTY)
        for conn in reader.connections:
            store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        for conn, log_time, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype)
            records.append({"log_time": log_time, "topic": conn.topic, "type": conn.msgtype,
                            "message": to_json(store, conn.msgtype, msg)})
    return records


def float32_shortest(value):
    """The content dicts with every float replaced by its float32 shortest repr."""
    if isinstance(value, dict):
        return {k: float32_shortest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [float32_shortest(v) for v in value]
    return float(str(np.float32(value))) if isinstance(value, float) else value


def verify(outdir: Path) -> None:
    expected = {}
    for distro in DISTROS:
        lines = (outdir / f"expected_{distro}.jsonl").read_text(encoding="utf-8").splitlines()
        expected[distro] = [json.loads(line) for line in lines]
        # The expected file says exactly what messages() put in (all floats here are float32).
        source = [{"log_time": T0 + i * 100_000_000, "topic": topic, "type": typ,
                   "message": float32_shortest(content)}
                  for i, (topic, typ, content) in enumerate(messages(distro == "kilted"))]
        assert expected[distro] == source, f"expected_{distro}.jsonl differs from the source"
        times = [r["log_time"] for r in expected[distro]]
        assert times == sorted(set(times)), "log times must be strictly increasing"
        for suffix in STORAGES:
            got = read_bag(outdir / f"{distro}_{suffix}")
            assert got == expected[distro], f"{distro}_{suffix} differs from expected"
            print(f"verify: {distro}_{suffix}: {len(got)} messages match")
    # The two distros differ only in RobotMode.performing_action.
    for j, k in zip(expected["jazzy"], expected["kilted"], strict=True):
        if j["type"] == "rmf_fleet_msgs/msg/FleetState":
            for robot_state in k["message"]["robots"]:
                del robot_state["mode"]["performing_action"]
        assert j == k, "jazzy and kilted content differ beyond performing_action"
    print("verify: jazzy == kilted apart from performing_action")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--verify"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = Path(args[0])
    outdir.mkdir(parents=True, exist_ok=True)
    for distro in DISTROS:  # rosbags never overwrites: remove our own previous outputs
        for suffix in STORAGES:
            shutil.rmtree(outdir / f"{distro}_{suffix}", ignore_errors=True)
    for distro in DISTROS:
        write_distro(outdir, distro)
    print(f"wrote bags and expected_*.jsonl to {outdir}")
    if "--verify" in argv:
        verify(outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
