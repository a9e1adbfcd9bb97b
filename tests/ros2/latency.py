"""socket.io latency client for `bench.py doors` (closing-note figures; not a test): subscribes
to /doors/bench_door/state and measures wall-clock receive time minus the DoorState's door_time
(its publish time) for every event during SECONDS; prints count, p50, p99, max in ms.

usage: latency.py URL SECONDS   (python-socketio, the repo's .venv)
"""
import json
import sys
import time

import socketio

url, seconds = sys.argv[1], float(sys.argv[2])
lat = []
sio = socketio.Client()


@sio.on("/doors/bench_door/state")
def on_door(value, meta=None):
    now = time.time_ns()
    t = value.get("door_time") or {}
    sent = t.get("sec", 0) * 1_000_000_000 + t.get("nanosec", 0)
    lat.append((now - sent) / 1e6)


sio.connect(url, transports=["websocket"])
sio.emit("subscribe", {"room": "/doors/bench_door/state"})
time.sleep(seconds)
sio.disconnect()
# The first value is the sticky one (possibly old): dropped.
lat = sorted(lat[1:])
if not lat:
    sys.exit("no events")


def q(p):
    return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2)


print(json.dumps({"events": len(lat), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(lat[-1], 2)}))
