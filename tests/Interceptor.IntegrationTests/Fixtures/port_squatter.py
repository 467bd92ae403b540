#!/usr/bin/python3
"""Listener takeover (issue 12.1): as an unprivileged user, try to bind() + listen() on the daemon's port at
127.0.0.1 and [::1] every few milliseconds, as an attacker waiting for the daemon to stop would. Whatever it
wins it keeps and accepts on, answering 220 like a fake MX, and it counts every connection that reached it.

Runs until SIGTERM (or --seconds), then prints one JSON line: attempts, bind results per errno name,
the addresses it held and when, and the connections it accepted. With --hold it binds once and reports
"holding" (a squatter that got there first), for the tests where the daemon must notice a foreign listener.
"""
import argparse, errno, json, select, signal, socket, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--interval", type=float, default=0.003)
parser.add_argument("--seconds", type=float, default=600)
parser.add_argument("--hold", action="store_true", help="exit with an error unless both addresses are bound at once")
args = parser.parse_args()

stop = False
def on_term(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

targets = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
held = {}          # address -> listening socket
results = {}       # errno name (or "ok") -> count
bound_at = []      # [address, seconds since start]
accepted = []      # [address, peer, seconds since start]
attempts = 0
started = time.monotonic()

def try_bind(family, address):
    global attempts
    attempts += 1
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((address, args.port))
        s.listen(128)
    except OSError as e:
        s.close()
        name = errno.errorcode.get(e.errno, str(e.errno))
        results[name] = results.get(name, 0) + 1
        return None
    results["ok"] = results.get("ok", 0) + 1
    s.setblocking(False)
    bound_at.append([address, round(time.monotonic() - started, 3)])
    print(json.dumps({"event": "bound", "address": address}), flush=True)
    return s

print(json.dumps({"event": "started", "port": args.port}), flush=True)
if args.hold:
    for family, address in targets:
        s = try_bind(family, address)
        if s is None:
            print(json.dumps({"event": "failed", "results": results}), flush=True)
            sys.exit(1)
        held[address] = s
    print(json.dumps({"event": "holding"}), flush=True)

while not stop and time.monotonic() - started < args.seconds:
    for family, address in targets:
        if address not in held:
            s = try_bind(family, address)
            if s is not None:
                held[address] = s
    readable = select.select(list(held.values()), [], [], args.interval)[0] if held else (time.sleep(args.interval) or [])
    for s in readable:
        try:
            c, peer = s.accept()
        except OSError:
            continue
        address = [a for a, h in held.items() if h is s][0]
        accepted.append([address, str(peer[0]) + ":" + str(peer[1]), round(time.monotonic() - started, 3)])
        print(json.dumps({"event": "accepted", "address": address}), flush=True)
        try:
            c.sendall(b"220 squatter ESMTP\r\n")
        except OSError:
            pass
        c.close()

print(json.dumps({"event": "summary", "attempts": attempts, "results": results, "bound": bound_at, "accepted": accepted}), flush=True)
