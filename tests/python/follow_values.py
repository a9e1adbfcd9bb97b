"""python-socketio client: connects (with a JWT when TOKEN is not "-"), subscribes to each room
asking for the acknowledgement, prints "ready" once every acknowledgement came, records every
value each room delivers, and when its standard input closes prints as JSON the acknowledgements,
the values received per room and the errors its event handlers met (a value nested too deep for
Python's json module fails there with RecursionError).

usage: follow_values.py URL TOKEN ROOM...
"""
import json
import sys
import threading

import socketio

url, token, *rooms = sys.argv[1:]
values = {room: [] for room in rooms}
errors = []
lock = threading.Lock()
sio = socketio.Client()

for room in rooms:
    def handler(value, meta=None, room=room):
        with lock:
            values[room].append(value)
    sio.on(room, handler)

auth = None if token == "-" else {"token": token}
try:
    sio.connect(url, auth=auth, transports=["websocket"])
except Exception as e:  # noqa: BLE001 - reported to the test as it is
    print(json.dumps({"connect_error": repr(e)}), flush=True)
    sys.exit(1)
acks = {room: sio.call("subscribe", {"room": room}, timeout=10) for room in rooms}
print("ready", flush=True)
sys.stdin.read()
with lock:
    got = {room: list(v) for room, v in values.items()}
try:
    out = json.dumps({"acks": acks, "values": got, "errors": errors})
except RecursionError as e:
    out = json.dumps({"acks": acks, "values": {}, "errors": [repr(e)]})
print(out, flush=True)
sio.disconnect()
