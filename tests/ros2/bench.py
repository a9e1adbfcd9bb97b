"""Throughput and latency of the live ROS 2 ingest (closing-note figures; not a test).

  bench.py pub SECONDS ROBOTS    publish FleetState (ROBOTS robots) as fast as rclpy can for
                                 SECONDS; prints {"published": N, "seconds": S}
  bench.py sub SECONDS           count FleetStates received for SECONDS after the first one;
                                 prints {"received": N, "seconds": S}
  bench.py doors SECONDS HZ      publish DoorState `bench_door` at HZ with door_time = publish
                                 wall time (for the socket.io latency client)

QoS as RMF's fleet_states: reliable, volatile, keep last 100.
"""

import json
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from builtin_interfaces.msg import Time
from rmf_door_msgs.msg import DoorMode, DoorState
from rmf_fleet_msgs.msg import FleetState, Location, RobotMode, RobotState

QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def fleet(robots):
    return FleetState(
        name="benchFleet",
        robots=[
            RobotState(
                name=f"robot{i}",
                model="TinyRobot",
                task_id=f"patrol.dispatch-{i:010d}",
                seq=i,
                mode=RobotMode(mode=RobotMode.MODE_MOVING),
                battery_percent=80.0,
                location=Location(x=float(i), y=2.0, yaw=0.5, level_name="L1", index=i),
                path=[Location(x=float(i) + 1.0, y=2.0, level_name="L1")],
            )
            for i in range(robots)
        ],
    )


def main():
    mode = sys.argv[1]
    seconds = float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node(f"bench_{mode}")
    if mode == "pub":
        robots = int(sys.argv[3])
        pub = node.create_publisher(FleetState, "/fleet_states", QOS)
        msg = fleet(robots)
        # Let discovery match the subscribers first.
        time.sleep(3.0)
        n = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            msg.robots[0].seq = n
            pub.publish(msg)
            n += 1
        elapsed = time.monotonic() - start
        time.sleep(1.0)
        print(json.dumps({"published": n, "seconds": elapsed}))
    elif mode == "sub":
        count = [0, None, None]

        def on(_m):
            now = time.monotonic()
            if count[1] is None:
                count[1] = now
            count[0] += 1
            count[2] = now

        node.create_subscription(FleetState, "/fleet_states", on, QOS)
        print(json.dumps("ready"), flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        span = (count[2] - count[1]) if count[1] is not None else 0.0
        print(json.dumps({"received": count[0], "seconds": span}))
    elif mode == "doors":
        hz = float(sys.argv[3])
        pub = node.create_publisher(DoorState, "door_states", QOS)
        time.sleep(3.0)
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            ns = time.time_ns()
            pub.publish(DoorState(
                door_time=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
                door_name="bench_door",
                current_mode=DoorMode(value=n % 3),
            ))
            n += 1
            time.sleep(max(0.0, start + n / hz - time.monotonic()))
        print(json.dumps({"published": n}))
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
