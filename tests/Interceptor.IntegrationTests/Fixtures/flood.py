#!/usr/bin/python3
"""A connection flood and a timed sender for the integration tests (stdlib only).

flood.py flood HOST PORT --threads N --seconds S --hold H [--mark PATH] [--reset]
    N threads open connections to HOST:PORT as fast as they can for S seconds. Each reads the first
    reply line: a 220 session is held H seconds, then QUIT; anything else is closed and the thread
    connects again at once. PATH is created when the first non-220 greeting is seen (the cap is hit).
    With --reset each connection is reset (RST, SO_LINGER 0) right after connect, nothing read; counted
    as the greeting "reset".
    Prints {"start", "end" (time.time()), "connections", "greetings": {code: n}, "refusals": [distinct
    non-220 lines], "errors": {name: n}, "max_open": most 220 sessions open at once as the client saw them}.

flood.py send HOST PORT --count N --interval I --sender F --rcpt T
    Sends N small messages one after another with smtplib, one connection each, and prints
    {"sends": [{"start", "seconds", "ok", "error"}]} with start as time.time().
"""

import argparse
import collections
import json
import smtplib
import socket
import struct
import threading
import time


def flood(args):
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    greetings = collections.Counter()
    errors = collections.Counter()
    refusals = set()
    intervals = []
    marked = threading.Event()
    barrier = threading.Barrier(args.threads)

    def worker():
        barrier.wait()
        while time.monotonic() < deadline:
            try:
                if args.reset:
                    with socket.create_connection((args.host, args.port), timeout=10) as c:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    with lock:
                        greetings["reset"] += 1
                    continue
                with socket.create_connection((args.host, args.port), timeout=10) as c:
                    data = b""
                    while b"\n" not in data:
                        chunk = c.recv(1024)
                        if not chunk:
                            break
                        data += chunk
                    line = data.decode("latin-1").split("\r\n")[0]
                    code = line[:3] if line[:3].isdigit() else "none"
                    opened = time.monotonic()
                    with lock:
                        greetings[code] += 1
                    if code != "220":
                        with lock:
                            refusals.add(line)
                        if args.mark and not marked.is_set():
                            marked.set()
                            open(args.mark, "w").close()
                        continue
                    time.sleep(args.hold)
                    # Taken before QUIT is sent: the daemon cannot end the session (and free its place under the
                    # cap) before QUIT arrives. A time taken after the 221 could be late by a thread switch, and
                    # the interval would then overlap the next session the daemon rightly let in.
                    closing = time.monotonic()
                    c.sendall(b"QUIT\r\n")
                    c.recv(1024)
                    with lock:
                        intervals.append((opened, closing))
            except OSError as e:
                with lock:
                    errors[type(e).__name__] += 1

    start = time.time()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.time()
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    open_now = max_open = 0
    for _, delta in events:
        open_now += delta
        max_open = max(max_open, open_now)
    print(json.dumps({
        "start": start, "end": end,
        "connections": sum(greetings.values()), "greetings": dict(greetings),
        "refusals": sorted(refusals), "errors": dict(errors), "max_open": max_open,
    }), flush=True)


def send(args):
    sends = []
    body = "From: <%s>\r\nTo: <%s>\r\nSubject: during the flood\r\n\r\nhello\r\n" % (args.sender, args.rcpt)
    for i in range(args.count):
        start = time.time()
        began = time.monotonic()
        record = {"start": start}
        try:
            with smtplib.SMTP(args.host, args.port, timeout=30) as s:
                s.sendmail(args.sender, [args.rcpt], body.encode("ascii"))
            record["ok"] = True
        except (smtplib.SMTPException, OSError) as e:
            record["ok"] = False
            record["error"] = "%s: %s" % (type(e).__name__, e)
        record["seconds"] = round(time.monotonic() - began, 3)
        sends.append(record)
        time.sleep(args.interval)
    print(json.dumps({"sends": sends}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["flood", "send"])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--hold", type=float, default=1)
    parser.add_argument("--mark")
    parser.add_argument("--reset", action="store_true")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--sender", default="alice@client.test")
    parser.add_argument("--rcpt", default="rcpt@example.test")
    args = parser.parse_args()
    flood(args) if args.mode == "flood" else send(args)


if __name__ == "__main__":
    main()
