#!/usr/bin/python3
"""Opens N SMTP sessions, takes each one as far as the EHLO reply, and then holds them idle.

Usage: idle.py --server HOST:PORT --count N [--parallel P] [--timeout S]
               [--rss-pid PID [--warmup W] [--settle S]] [--hold-seconds S]

Every session is a complete, live conversation (the daemon has attributed it, connected upstream
and relayed the greeting and EHLO), then nothing more is sent. Once all are open it prints one
JSON line {"open": n, "failures": f, "errors": [...], "open_s": seconds} and keeps them open
until its standard input reaches end of file (or it is signalled), or for --hold-seconds; then it
closes them all.

With --rss-pid (the daemon's process id; /proc/PID/status is world-readable) it first opens and
closes W warm-up sessions (so that what every session's first use brings, JIT, thread pool, pools,
is in place), waits S seconds and reads the daemon's VmRSS, then opens the N sessions, waits S
seconds more and reads it again: the JSON line then also has "rss_before_kb", "rss_kb" and
"bytes_per_session". Used by the benchmark (tests/bench/bench.py) and by IdleSessionMemoryTests.

It raises its own descriptor limit to the hard one: N sessions need N descriptors here.
"""

import argparse
import asyncio
import json
import resource
import sys
import time


def parse_server(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port)
    host, _, port = text.rpartition(":")
    return host, int(port)


async def read_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed by server")
        if len(line) < 4 or line[3:4] != b"-":
            return line.decode("latin-1").rstrip()


async def open_one(host, port, timeout, gate, sessions, errors):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            greeting = await asyncio.wait_for(read_reply(reader), timeout)
            if not greeting.startswith("220"):
                raise ConnectionError("greeting: " + greeting[:200])
            writer.write(b"EHLO idle.bench.invalid\r\n")
            ehlo = await asyncio.wait_for(read_reply(reader), timeout)
            if not ehlo.startswith("250"):
                raise ConnectionError("EHLO: " + ehlo[:200])
            sessions.append((reader, writer))
        except Exception as e:  # counted, reported
            errors.append("%s: %s" % (type(e).__name__, e))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for process %d" % pid)


async def open_all(host, port, count, args):
    sessions, errors = [], []
    gate = asyncio.Semaphore(args.parallel)
    await asyncio.gather(*(open_one(host, port, args.timeout, gate, sessions, errors) for _ in range(count)))
    return sessions, errors


async def close_all(sessions):
    for _, writer in sessions:
        writer.close()
    for _, writer in sessions:
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--rss-pid", type=int, help="the daemon's pid: measure its VmRSS before and with the sessions")
    parser.add_argument("--warmup", type=int, default=0, help="sessions opened and closed before the first measurement")
    parser.add_argument("--settle", type=float, default=2, help="seconds to wait before each measurement")
    parser.add_argument("--hold-seconds", type=float, help="hold this long instead of until stdin ends")
    args = parser.parse_args()
    host, port = parse_server(args.server)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    report = {}
    if args.rss_pid:
        if args.warmup:
            warm, _ = await open_all(host, port, args.warmup, args)
            await close_all(warm)
        await asyncio.sleep(args.settle)
        report["rss_before_kb"] = rss_kb(args.rss_pid)

    begin = time.perf_counter()
    sessions, errors = await open_all(host, port, args.count, args)
    report.update({"open": len(sessions), "failures": len(errors), "errors": errors[:5],
                   "open_s": round(time.perf_counter() - begin, 2)})
    if args.rss_pid:
        await asyncio.sleep(args.settle)
        report["rss_kb"] = rss_kb(args.rss_pid)
        if sessions:
            report["bytes_per_session"] = round((report["rss_kb"] - report["rss_before_kb"]) * 1024 / len(sessions))
    print(json.dumps(report), flush=True)

    if args.hold_seconds is not None:
        await asyncio.sleep(args.hold_seconds)
    else:
        # Hold until the caller closes our stdin.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
    await close_all(sessions)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
