"""A raw Engine.IO 4 / Socket.IO 5 websocket client (websocket-client) that subscribes to many
rooms at once, asking for an acknowledgement of each, and reads nothing for PAUSE seconds: with
its receive buffer shrunk to 4 KiB, the server's queue for it fills. Then it reads until every
acknowledgement and a value of every room arrived (at most 60 s) and prints, as JSON, the
acknowledgements by id and the last value received for each room.

usage: many_rooms.py URL TOKEN PAUSE ROOM...
"""
import json
import socket
import sys
import time

import websocket

url, token, pause, *rooms = sys.argv[1:]
ws = websocket.create_connection(
    url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
    sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
    timeout=10,
)
if not ws.recv().startswith("0"):
    sys.exit("no Engine.IO open packet")
ws.send("40" + json.dumps({"token": token}))
while True:
    packet = ws.recv()
    if packet.startswith("40"):
        break
    if packet.startswith("44"):
        sys.exit(f"connection refused: {packet}")
for i, room in enumerate(rooms):
    ws.send(f"42{i}" + json.dumps(["subscribe", {"room": room}]))
time.sleep(float(pause))

acks, values = {}, {}
deadline = time.time() + 60
while (len(acks) < len(rooms) or len(values) < len(rooms)) and time.time() < deadline:
    try:
        packet = ws.recv()
    except websocket.WebSocketTimeoutException:
        break  # nothing more is coming: report what arrived
    if packet == "2":
        ws.send("3")
    elif packet.startswith("43"):
        body = packet[2:]
        digits = len(body) - len(body.lstrip("0123456789"))
        acks[body[:digits]] = json.loads(body[digits:])[0]
    elif packet.startswith("42"):
        event = json.loads(packet[2:])
        values[event[0]] = event[1]
ws.close()
json.dump({"acks": acks, "values": values}, sys.stdout)
