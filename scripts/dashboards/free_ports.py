"""Prints N free loopback TCP ports, space-separated (the kernel picks them).

    python3 scripts/dashboards/free_ports.py 4
"""
import socket
import sys

sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])
for s in sockets:
    s.close()
