#!/usr/bin/python3
"""Holds listening TCP sockets on a range of ports, as a victim's long-running server might.

Usage: hold_ports.py --from A --to B [--skip C-D]

Binds 0.0.0.0:P and listens, for every port P from A to B (both included) outside C-D; a port that
cannot be bound is left out. Prints one JSON line {"held": [ports]} once all are open, then sleeps
until killed.
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
