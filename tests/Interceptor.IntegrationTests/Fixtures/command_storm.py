#!/usr/bin/python3
"""A command storm that keeps the daemon's CPU busy, for the fair-scheduling test (stdlib only).

command_storm.py HOST PORT --sessions N --batch K --seconds S [--ready PATH] [--stop PATH]
    N threads each open one session, read the greeting, say EHLO, then loop: K NOOPs in one write (RFC 2920
    lets NOOP end a group; the daemon answers each where it stands, one reply each), then read the K replies.
    The daemon parses K commands and writes K replies for every write the client makes, so a few client
    writes cost the daemon far more CPU than they cost the client: the storm is the daemon's work, not the
    client's. --ready PATH is created once every session has its EHLO reply (the load is on); the loops run
    until --stop PATH exists or S seconds after the start. A session that is refused or closed connects again.
    Prints {"sessions": greeted sessions, "noops": NOOPs answered 250, "other_replies": {code: n},
    "greetings": {code: n}, "errors": {name: n}, "ready_after": seconds to PATH, "seconds",
    "first_end": when the first session's loop ended (time.time())}.
"""

import argparse
import collections
import json
import os
import socket
import threading
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--ready")
    p.add_argument("--stop")
    args = p.parse_args()

    lock = threading.Lock()
    counts = {"sessions": 0, "noops": 0}
    other = collections.Counter()
    greetings = collections.Counter()
    errors = collections.Counter()
    ended = []
    ehlo_done = threading.Semaphore(0)
    start = time.monotonic()
    deadline = start + args.seconds

    def running():
        return time.monotonic() < deadline and not (args.stop and os.path.exists(args.stop))
    burst = b"NOOP\r\n" * args.batch

    def replies(sock, buf, wanted):
        """Reads `wanted` single-line replies; returns (codes counted, rest of the buffer), or None when closed."""
        codes = collections.Counter()
        got = 0
        while got < wanted:
            end = buf.find(b"\r\n")
            if end < 0:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
                continue
            codes[buf[:3].decode("latin-1")] += 1
            buf = buf[end + 2:]
            got += 1
        return codes, buf

    def session(mark):
        with socket.create_connection((args.host, args.port), timeout=30) as c:
            got = replies(c, b"", 1)
            code = next(iter(got[0])) if got else "none"
            with lock:
                greetings[code] += 1
            if code != "220":
                time.sleep(0.05)
                return
            c.sendall(b"EHLO storm.test\r\n")
            buf = b""
            while True:  # the multi-line EHLO reply ends with "250 " (a space after the code)
                end = buf.find(b"\r\n")
                if end < 0:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    continue
                line, buf = buf[:end], buf[end + 2:]
                if line[3:4] != b"-":
                    break
            with lock:
                counts["sessions"] += 1
            if not mark["done"]:
                mark["done"] = True
                ehlo_done.release()
            while running():
                c.sendall(burst)
                got = replies(c, buf, args.batch)
                if got is None:
                    return
                codes, buf = got
                with lock:
                    counts["noops"] += codes.pop("250", 0)
                    other.update(codes)
                if codes:
                    return  # a refusal (421, a timeout): start over

    def worker():
        mark = {"done": False}
        try:
            loop(mark)
        finally:
            with lock:
                ended.append(time.time())

    def loop(mark):
        while running():
            try:
                session(mark)
            except OSError as e:
                with lock:
                    errors[type(e).__name__] += 1
                time.sleep(0.05)
            if not mark["done"]:
                mark["done"] = True
                ehlo_done.release()  # never leave the ready mark waiting for a session that failed

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.sessions)]
    for t in threads:
        t.start()
    for _ in threads:
        ehlo_done.acquire()
    ready_after = time.monotonic() - start
    if args.ready:
        open(args.ready, "w").close()
    for t in threads:
        t.join()
    print(json.dumps({
        "sessions": counts["sessions"], "noops": counts["noops"], "other_replies": dict(other),
        "greetings": dict(greetings), "errors": dict(errors), "ready_after": round(ready_after, 3),
        "seconds": round(time.monotonic() - start, 3), "first_end": min(ended),
    }), flush=True)


if __name__ == "__main__":
    main()
