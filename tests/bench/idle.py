#!/usr/bin/python3
"""Opens N SMTP sessions, takes each one as far as the EHLO reply, and then holds them idle.

Usage: idle.py --server HOST:PORT --count N [--parallel P] [--timeout S]

Every session is a complete, live conversation (the daemon has attributed it, connected upstream
and relayed the greeting and EHLO), then nothing more is sent. Once all are open it prints one
JSON line {"open": n, "failures": f, "errors": [...], "open_s": seconds} and keeps them open
until its standard input reaches end of file (or it is signalled); then it closes them all.
"""

import argparse
import asyncio
import json
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


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    host, port = parse_server(args.server)

    sessions, errors = [], []
    gate = asyncio.Semaphore(args.parallel)
    begin = time.perf_counter()
    await asyncio.gather(*(open_one(host, port, args.timeout, gate, sessions, errors) for _ in range(args.count)))
    print(json.dumps({"open": len(sessions), "failures": len(errors), "errors": errors[:5],
                      "open_s": round(time.perf_counter() - begin, 2)}), flush=True)

    # Hold until the caller closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for _, writer in sessions:
        writer.close()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
