"""python-socketio client: connects with a JWT, subscribes to each room asking for the
acknowledgement, and prints as JSON each room's acknowledgement and the sticky values received
(waiting at most 10 s for the value of every room whose subscription was acknowledged without an
error). With HOLD=1 in the environment it stays connected (and subscribed) after printing,
until its standard input closes.

usage: rooms.py URL TOKEN ROOM...
"""
import json
import os
import sys
import threading

import socketio

url, token, *rooms = sys.argv[1:]
values = {}
acks = {}
lock = threading.Lock()
arrived = threading.Condition(lock)
sio = socketio.Client()

for room in rooms:
    def handler(value, meta=None, room=room):
        with lock:
            values.setdefault(room, value)
            arrived.notify_all()
    sio.on(room, handler)

sio.connect(url, auth={"token": token}, transports=["websocket"])
for room in rooms:
    acks[room] = sio.call("subscribe", {"room": room}, timeout=10)
allowed = {r for r, a in acks.items() if "error" not in a}
with lock:
    arrived.wait_for(lambda: allowed <= set(values), timeout=10)
    got = dict(values)
print(json.dumps({"acks": acks, "values": got}), flush=True)
if os.environ.get("HOLD") == "1":
    sys.stdin.read()
sio.disconnect()
