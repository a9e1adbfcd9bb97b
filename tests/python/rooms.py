"""python-socketio client: connects with a JWT, subscribes to each room asking for the
acknowledgement, and prints as JSON each room's acknowledgement and the sticky values received
(waiting at most 10 s for the value of every room whose subscription was acknowledged without an
error).

usage: rooms.py URL TOKEN ROOM...
"""
import json
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
sio.disconnect()
print(json.dumps({"acks": acks, "values": got}))
