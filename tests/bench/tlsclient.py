#!/usr/bin/python3
"""The load generator of the A_tls / B_tls pair (issue 19): a legacy script's SMTP client that uses STARTTLS
whenever the server offers it, one message per connection, --streams parallel streams back to back.

Usage: tlsclient.py --server HOST:PORT --count N --streams S [--size BYTES] [--timeout S]

What PHPMailer does by default (SMTPAutoTLS): EHLO; if the reply lists STARTTLS, STARTTLS, the handshake and
EHLO again; then MAIL, RCPT, DATA, the message, QUIT. Opportunistic and unverified, like PHPMailer with
verify_peer off: no certificate or name check (the MX's certificate is a throwaway self-signed one), so the
figure is the cost of the protocol, not of a trust store. No TLS session is resumed: each connection is a new
client, as each run of a PHP script is.

Each stream is a forked process (Python threads would share one core through the GIL); the parent waits for
them, so the caller's RUSAGE_CHILDREN holds the CPU of every stream. Prints one JSON line: sent, ok, failures,
first errors, handshakes (TLS handshakes completed by this client: STARTTLS offered and taken), seconds (first
connect to the last stream's end).
"""

import argparse
import json
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's directory out
from latency import make_message, open_session, parse_server, send_quit, transaction  # noqa: E402


def send_one(host, port, message, timeout, context, tally):
    sock, reader, handshake = open_session(host, port, timeout, context, required=False)
    try:
        tally["handshakes"] += handshake
        transaction(sock, reader, message)
        send_quit(sock, reader)
    finally:
        sock.close()


def stream(args, index, count):
    """One stream's messages; returns its tally."""
    host, port = parse_server(args.server)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tally = {"sent": count, "ok": 0, "failures": 0, "errors": [], "handshakes": 0}
    for i in range(count):
        try:
            send_one(host, port, make_message(args.size, "tls%d" % index, i), args.timeout, context, tally)
            tally["ok"] += 1
        except Exception as e:  # every failure is a measured result
            tally["failures"] += 1
            if len(tally["errors"]) < 5:
                tally["errors"].append("%d.%d: %s: %s" % (index, i, type(e).__name__, e))
    return tally


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--count", type=int, required=True, help="messages in all, shared by the streams")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()

    began = time.perf_counter()
    children = []
    for index in range(args.streams):
        count = args.count // args.streams + (1 if index < args.count % args.streams else 0)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            with os.fdopen(write_end, "w") as out:
                json.dump(stream(args, index, count), out)
            os._exit(0)
        os.close(write_end)
        children.append((pid, read_end))

    total = {"sent": 0, "ok": 0, "failures": 0, "errors": [], "handshakes": 0}
    for pid, read_end in children:
        with os.fdopen(read_end) as f:
            text = f.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not text:
            raise SystemExit("tlsclient.py: stream %d exited with status %d" % (pid, status))
        tally = json.loads(text)
        for key in ("sent", "ok", "failures", "handshakes"):
            total[key] += tally[key]
        total["errors"] += tally["errors"]
    total["errors"] = total["errors"][:5]
    total["seconds"] = round(time.perf_counter() - began, 4)
    print(json.dumps(total))
    return 0 if total["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
