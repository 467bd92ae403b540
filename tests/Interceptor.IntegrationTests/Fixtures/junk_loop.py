#!/usr/bin/python3
"""Transactions that never reach DATA, as fast as one user can make them (stdlib only).

junk_loop.py HOST PORT --mode junk|rset --connections C --transactions N --seconds S
    C threads each open a connection, say EHLO and loop, lock-step, either
      junk: MAIL FROM:<x@y> X-JUNK=1            (a parameter the upstream does not support)
      rset: MAIL FROM:<x@y>, then RSET
    until the server answers 421 or closes; then they connect again. All stop once N transactions were
    attempted in total, after S seconds, or when a connection is refused 20 times in a row (suspended).
    Prints {"transactions", "connections", "replies": {code: n}, "closing": [distinct 421 lines],
    "refused_connections", "greetings": {code: n}, "seconds"}.
"""

import argparse
import collections
import json
import socket
import threading
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--mode", choices=["junk", "rset"], required=True)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--transactions", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()

    lock = threading.Lock()
    state = {"transactions": 0, "connections": 0, "refused_connections": 0, "refused_in_a_row": 0}
    replies = collections.Counter()
    greetings = collections.Counter()
    closing = set()
    start = time.monotonic()
    deadline = start + args.seconds

    def done():
        return (state["transactions"] >= args.transactions or time.monotonic() > deadline
                or state["refused_in_a_row"] >= 20)

    def read_reply(f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                return None
            lines.append(line.decode("latin-1").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def session():
        try:
            c = socket.create_connection((args.host, args.port), timeout=30)
        except OSError:
            with lock:
                state["refused_connections"] += 1
                state["refused_in_a_row"] += 1
            time.sleep(0.05)
            return
        with c, c.makefile("rb") as f:
            greeting = read_reply(f)
            code = greeting[0][:3] if greeting else "none"
            with lock:
                state["connections"] += 1
                greetings[code] += 1
                state["refused_in_a_row"] = 0 if code == "220" else state["refused_in_a_row"] + 1
            if code != "220":
                return
            c.sendall(b"EHLO junk.test\r\n")
            if read_reply(f) is None:
                return
            while not done():
                with lock:
                    state["transactions"] += 1
                if args.mode == "junk":
                    c.sendall(b"MAIL FROM:<x@y.test> X-JUNK=1\r\n")
                    r = read_reply(f)
                else:
                    c.sendall(b"MAIL FROM:<x@y.test>\r\n")
                    r = read_reply(f)
                    if r is not None and r[0].startswith("250"):
                        c.sendall(b"RSET\r\n")
                        r = read_reply(f)
                if r is None:
                    return
                with lock:
                    replies[r[0][:3]] += 1
                    if r[0].startswith("421"):
                        closing.add(r[0])
                if r[0].startswith("421"):
                    return

    def worker():
        while not done():
            try:
                session()
            except OSError:
                with lock:
                    replies["reset"] += 1

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({
        "transactions": state["transactions"], "connections": state["connections"], "replies": replies,
        "closing": sorted(closing), "refused_connections": state["refused_connections"], "greetings": greetings,
        "seconds": round(time.monotonic() - start, 3),
    }))


if __name__ == "__main__":
    main()
