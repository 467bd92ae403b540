#!/usr/bin/python3
"""Commands streamed without end, so that the daemon's reads never have to wait (stdlib only).

noop_stream.py HOST PORT --sessions N --seconds S [--endless-line] [--ready PATH] [--stop PATH]
    N sessions each read the greeting, say EHLO, then one thread writes NOOPs (with --endless-line: one command
    line that never ends, bytes without LF) as fast as the socket takes them
    while another reads the replies as fast as they come: the daemon always finds the next command already there
    and room for its reply. --ready PATH is created once every session streams; the streams run until --stop PATH
    exists or S seconds after the start. Prints {"sessions": sessions that streamed, "noops": 250 replies read,
    "errors": {name: n}, "first_end": when the first stream ended (time.time())}.
"""

import argparse
import collections
import json
import os
import socket
import threading
import time

NOOPS = b"NOOP\r\n" * 2048
NO_LF = b"X" * (4 << 20)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--ready")
    p.add_argument("--stop")
    p.add_argument("--endless-line", action="store_true")
    a = p.parse_args()
    chunk = NO_LF if a.endless_line else NOOPS
    deadline = time.time() + a.seconds
    lock = threading.Lock()
    counts = {"sessions": 0, "noops": 0}
    errors = collections.Counter()
    ends = []
    started = threading.Semaphore(0)

    def running():
        return time.time() < deadline and not (a.stop and os.path.exists(a.stop))

    def session():
        try:
            sock = socket.create_connection((a.host, a.port), timeout=30)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO stream.example\r\n")
            while True:
                line = f.readline()
                if not line or line[3:4] == b" ":
                    break
            with lock:
                counts["sessions"] += 1
        except OSError as e:
            with lock:
                errors[type(e).__name__] += 1
            started.release()
            return
        started.release()

        def reader():
            n = 0
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    n += data.count(b"250 ")
            except OSError:
                pass
            with lock:
                counts["noops"] += n

        r = threading.Thread(target=reader, daemon=True)
        r.start()
        try:
            while running():
                sock.sendall(chunk)
        except OSError as e:
            with lock:
                errors[type(e).__name__] += 1
        with lock:
            ends.append(time.time())
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        r.join(10)
        sock.close()

    threads = [threading.Thread(target=session, daemon=True) for _ in range(a.sessions)]
    for t in threads:
        t.start()
    for _ in threads:
        started.acquire()
    if a.ready:
        open(a.ready, "w").close()
    for t in threads:
        t.join(a.seconds + 30)
    print(json.dumps({"sessions": counts["sessions"], "noops": counts["noops"], "errors": dict(errors),
                      "first_end": min(ends) if ends else 0}))


if __name__ == "__main__":
    main()
