#!/usr/bin/python3
"""Holds TCP sockets on a range of ports: listening, as a victim's long-running server might, or connected
from each port to one address, as an exempt user's (the local MTA's) direct connections to an MX might.

Usage: hold_ports.py --from A --to B [--skip C-D] [--connect HOST:PORT]

Binds 0.0.0.0:P and listens (or, with --connect, binds 127.0.0.1:P and connects to HOST:PORT), for every
port P from A to B (both included) outside C-D; a port that cannot be bound or connected is left out.
Prints one JSON line {"held": [ports]} once all are open, then sleeps until killed.
"""

import argparse
import json
import resource
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", type=int, required=True)
    parser.add_argument("--to", dest="last", type=int, required=True)
    parser.add_argument("--skip", default="")
    parser.add_argument("--connect", default="")
    args = parser.parse_args()
    skip_from, _, skip_to = args.skip.partition("-")
    skipped = range(int(skip_from), int(skip_to) + 1) if args.skip else range(0)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.last - args.first + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    held = []
    sockets = []
    for port in range(args.first, args.last + 1):
        if port in skipped:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if args.connect:
                host, _, remote_port = args.connect.rpartition(":")
                s.bind(("127.0.0.1", port))
                s.connect((host, int(remote_port)))
            else:
                s.bind(("0.0.0.0", port))
                s.listen(16)
        except OSError:
            s.close()
            continue
        sockets.append(s)
        held.append(port)
    print(json.dumps({"held": held}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
