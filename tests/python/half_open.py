"""Holds N half-open HTTP connections to 127.0.0.1:PORT (half a request line each, then
nothing), for tests/listener.rs, which needs more than one process may hold here.

Prints "open N" once all are connected, waits for its stdin to close, then waits (at most
DEADLINE seconds) until the server has closed each one (EOF or reset) and prints "closed K".
"""

import selectors
import socket
import sys
import time


def main() -> None:
    port, n, deadline = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /hea")
        s.setblocking(False)
        conns.append(s)
    print(f"open {len(conns)}", flush=True)
    sys.stdin.read()
    sel = selectors.DefaultSelector()
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
    closed, end = 0, time.monotonic() + deadline
    while closed < n and time.monotonic() < end:
        for key, _ in sel.select(timeout=1.0):
            try:
                data = key.fileobj.recv(4096)
            except (ConnectionResetError, ConnectionAbortedError):
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                closed += 1
    print(f"closed {closed}", flush=True)


if __name__ == "__main__":
    main()
