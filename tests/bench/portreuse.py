#!/usr/bin/python3
"""Two SMTP connections from the same client port to two different MXes, one after the other.

Usage: portreuse.py --first HOST:PORT --second HOST:PORT

Linux hands the same ephemeral port to connections towards different destinations, and a busy host
reuses ports within seconds. Both connections are redirected to the daemon's one listener, so in
conntrack their reply tuples (listener <- client:port) are the same; the NAT then has to move the
second connection to another source port, and the daemon sees a port that no client socket has.
This client makes that happen on purpose (the first connection takes an ephemeral port, the second
binds to it) and prints one JSON object with both greetings and the ports.
"""

import argparse
import json
import socket


def parse(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def greet(target, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(30)
    sock.bind(("127.0.0.1", port))
    try:
        sock.connect(parse(target))
        used = sock.getsockname()[1]
        greeting = sock.recv(4096).decode("latin-1").strip()
        try:
            sock.sendall(b"QUIT\r\n")
            sock.recv(4096)
        except OSError:
            pass
        return used, greeting
    finally:
        sock.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", required=True)
    parser.add_argument("--second", required=True)
    args = parser.parse_args()
    port, first = greet(args.first, 0)
    _, second = greet(args.second, port)
    print(json.dumps({"port": port, "first": first, "second": second}))


if __name__ == "__main__":
    main()
