"""python-socketio client: connects with a JWT, subscribes to rooms, prints the sticky value and
sequence number of each as JSON once all arrived (at most 10 s).

usage: sticky.py URL TOKEN ROOM...
"""
import json
import sys
import threading

import socketio

url, token, *rooms = sys.argv[1:]
got = {}
done = threading.Event()
sio = socketio.Client()

for room in rooms:
    def handler(value, meta=None, room=room):
        got.setdefault(room, {"value": value, "seq": (meta or {}).get("seq")})
        if len(got) == len(rooms):
            done.set()
    sio.on(room, handler)

sio.connect(url, auth={"token": token}, transports=["websocket"])
for room in rooms:
    sio.emit("subscribe", {"room": room})
ok = done.wait(10)
sio.disconnect()
if not ok:
    sys.exit(f"missing sticky values for {sorted(set(rooms) - set(got))}")
print(json.dumps(got))
