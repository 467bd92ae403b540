#!/usr/bin/python3
"""Holds TCP sockets on a range of ports: listening, as a victim's long-running server might, or connected
from each port to one address, as an exempt user's (the local MTA's) direct connections to an MX might.

Usage: hold_ports.py --from A --to B [--skip C-D] [--accept] [--connect HOST:PORT [--moved-by FIRST] [--source ADDR:PORT]]

Binds 0.0.0.0:P and listens (or, with --connect, binds 127.0.0.1:P and connects to HOST:PORT), for every
port P from A to B (both included) outside C-D; a port that cannot be bound or connected is left out.
Prints one JSON line {"held": [ports]} once all are open, then sleeps until killed.

With --accept, the listeners also accept what connects to them, and hold it. With --source, each connection
is bound to ADDR:PORT (SO_REUSEADDR and SO_REUSEPORT: one source for all, and the address and port of a
listener of the same user) and goes to HOST's port P: as a remote host's MTA, from its port 25, to a
customer's service on P.

With --moved-by, each held connection is a redirected one whose port NAT moved, as a customer's live
session may be: first a connection from every P to FIRST (redirected: its reply tuple takes P), read to
its greeting; then the one from P to HOST:PORT, which NAT gives another port, read to its greeting (a
port whose greeting is not 220 is left out); then the FIRST connections QUIT and close. Once conntrack
has forgotten them (the caller's TIME_WAIT timeout), no reply tuple holds the held ports any more.
"""

import argparse
import json
import resource
import selectors
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--from", dest="first", type=int, required=True)
    parser.add_argument("--to", dest="last", type=int, required=True)
    parser.add_argument("--skip", default="")
    parser.add_argument("--connect", default="")
    parser.add_argument("--moved-by", dest="moved_by", default="")
    parser.add_argument("--source", default="")
    parser.add_argument("--accept", action="store_true")
    args = parser.parse_args()
    skip_from, _, skip_to = args.skip.partition("-")
    skipped = range(int(skip_from), int(skip_to) + 1) if args.skip else range(0)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * (args.last - args.first) + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    if args.moved_by:
        held, sockets = hold_moved(args, skipped)
        print(json.dumps({"held": held}), flush=True)
        while True:
            time.sleep(3600)

    held = []
    sockets = []
    for port in range(args.first, args.last + 1):
        if port in skipped:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if args.source:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(endpoint(args.source))
                s.connect((args.connect, port))
            elif args.connect:
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
    if args.accept:
        accept_forever(sockets)
    while True:
        time.sleep(3600)


def accept_forever(listeners):
    accepted = []
    with selectors.DefaultSelector() as selector:
        for listener in listeners:
            selector.register(listener, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                try:
                    accepted.append(key.fileobj.accept()[0])
                except OSError:
                    pass


def endpoint(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def greeting(sock):
    reply = b""
    while not reply.endswith(b"\r\n") or reply[3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply.decode("latin-1")


def connect_from(port, target):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(60)
    s.bind(("127.0.0.1", port))
    s.connect(endpoint(target))
    return s


def hold_moved(args, skipped):
    first = {}
    for port in range(args.first, args.last + 1):
        if port in skipped:
            continue
        try:
            s = connect_from(port, args.moved_by)
            if greeting(s).startswith("220"):
                first[port] = s
            else:
                s.close()
        except OSError:
            continue
    held, sockets = [], []
    for port in first:
        try:
            s = connect_from(port, args.connect)
            if greeting(s).startswith("220"):
                held.append(port)
                sockets.append(s)
            else:
                s.close()
        except OSError:
            continue
    for s in first.values():
        try:
            s.sendall(b"QUIT\r\n")
            greeting(s)
        except OSError:
            pass
        s.close()
    return held, sockets


if __name__ == "__main__":
    sys.exit(main())
