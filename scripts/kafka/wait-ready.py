"""Waits until a Kafka broker answers a Metadata request naming at least one broker.

Usage: python3 wait-ready.py HOST:PORT TIMEOUT_SECONDS PID
Exits 0 once it answers, 1 when the process PID has exited or the time is up. Speaks the
protocol itself (Metadata v1, topics null), so it needs nothing but Python.
"""
import os
import socket
import struct
import sys
import time


def metadata_brokers(host, port):
    """Sends one Metadata v1 request; returns how many brokers the answer lists."""
    client_id = b"kaufmann-wait-ready"
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 12:
            chunk = s.recv(12 - len(head))
            if not chunk:
                raise ConnectionError("closed")
            head += chunk
        _size, correlation, brokers = struct.unpack(">iii", head)
        if correlation != 7:
            raise ConnectionError("wrong correlation id")
        return brokers


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    deadline = time.monotonic() + float(sys.argv[2])
    pid = int(sys.argv[3])
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 1
        try:
            if metadata_brokers(host, int(port)) >= 1:
                return 0
        except (OSError, ConnectionError):
            pass
        time.sleep(0.2)
    return 1


if __name__ == "__main__":
    sys.exit(main())
