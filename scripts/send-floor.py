#!/usr/bin/env python3
"""Kernel CPU of one send() of a small message on loopback TCP: the floor under any server that
writes each delivery to its socket with a system call of its own (BENCHMARKS.md, "Proxy load
test").

1,000 connections on 127.0.0.1, one receiver process draining them; the sender writes 200,000
messages round-robin (TCP_NODELAY, like a websocket server) and reports its kernel and user CPU
per send. On loopback the sender's kernel time includes the receiving side's TCP processing.
Bounded (200,000 sends, at most 60 s of waiting) and loopback only.

usage: scripts/send-floor.py [SIZE=600]
"""
import multiprocessing as mp
import os
import resource
import selectors
import socket
import sys
import time

CONNECTIONS = 1000
SENDS = 200_000


def receiver(port: int, size: int, ready, done) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(2 * CONNECTIONS)
    ready.set()
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(CONNECTIONS):
        conn, _ = listener.accept()
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ)
        conns.append(conn)
    got, want = 0, SENDS * size
    deadline = time.time() + 60
    while got < want and time.time() < deadline:
        for key, _ in sel.select(1):
            try:
                got += len(key.fileobj.recv(1 << 16))
            except BlockingIOError:
                pass
    done.set()


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * CONNECTIONS)), hard))
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    ready, done = mp.Event(), mp.Event()
    proc = mp.Process(target=receiver, args=(port, size, ready, done))
    proc.start()
    ready.wait(10)
    socks = []
    for _ in range(CONNECTIONS):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(conn)
    message = b"x" * size
    before, start = os.times(), time.time()
    for i in range(SENDS):
        socks[i % CONNECTIONS].sendall(message)
    after, end = os.times(), time.time()
    done.wait(60)
    proc.join(5)
    kernel = (after.system - before.system) / SENDS * 1e6
    user = (after.user - before.user) / SENDS * 1e6
    print(
        f"{size} B: {SENDS} sends in {end - start:.2f} s; sender CPU per send: "
        f"kernel {kernel:.2f} us, user {user:.2f} us"
    )


if __name__ == "__main__":
    main()
