#!/usr/bin/python3
"""Per-message SMTP latency, one message per connection, at a fixed modest rate.

Usage: latency.py --server HOST:PORT --count N --rate R [--size BYTES] [--timeout S] [--label TEXT]
                  [--raw] [--starttls [--server-name NAME]]

smtp-source does not report latency, so this client times each transaction itself: from just
before connect() to the 250 reply to the final dot (the moment the sender knows its message is
taken), with EHLO, MAIL, RCPT and DATA in between, one command at a time. QUIT follows, untimed.
Messages start on a fixed schedule (i / rate seconds after the first), so a slow message does not
lower the offered rate; if one overruns its slot the next starts at once.

Plain sockets rather than smtplib: less client overhead inside the figure, and the reply codes
are checked exactly. Anything but the expected code, a timeout or a socket error is a failure.
Prints one JSON object: label, sent, ok, failures, first errors, p50/p90/p99/max/mean in ms
(and with --raw every sample, so a caller can pool several runs; without --starttls also each sample's steps: connect()
to the 220, then from each reply to the next, to see where a slow message spent its time).

--rate 0 sends back to back (for msg/s). --starttls does what a client that requires TLS does (issue 18):
EHLO, STARTTLS, the handshake (SNI --server-name; the certificate is not verified: the figure is the daemon's
cost, not the client's trust store), EHLO again, then the transaction over TLS; all of it inside the figure.
"""

import argparse
import json
import socket
import ssl
import sys
import time


def parse_server(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port)
    host, _, port = text.rpartition(":")
    return host, int(port)


def make_message(size, label, index):
    head = (
        "From: <latency@client.bench.invalid>\r\n"
        "To: <sink@example.com>\r\n"
        "Subject: latency probe %s %d\r\n"
        "Message-ID: <%s.%d.%d@client.bench.invalid>\r\n"
        "\r\n" % (label, index, label, index, time.time_ns())
    )
    line = ("x" * 76) + "\r\n"
    body = line * max(1, size // len(line))
    return (head + body).encode("ascii")


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.marks = []  # when each reply was complete (perf_counter), for the per-step breakdown of --raw

    def reply(self):
        """Reads one (possibly multi-line) reply; returns its code and last line. Every line of it stays in self.lines
        (an EHLO reply's extensions, for tlsclient.py)."""
        self.lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed by server")
                self.buf += chunk
            line, _, self.buf = self.buf.partition(b"\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionError("malformed reply %r" % line[:80])
            self.lines.append(line)
            if len(line) == 3 or line[3:4] == b" ":
                self.marks.append(time.perf_counter())
                return int(line[:3]), line.decode("latin-1")


def expect(reader, code):
    got, text = reader.reply()
    if got != code:
        raise ConnectionError("expected %d, got: %s" % (code, text[:200]))


def transaction(sock, reader, message):
    """MAIL, RCPT, DATA and the message, one command at a time, each reply checked; returns after the 250 to the dot."""
    sock.sendall(b"MAIL FROM:<latency@client.bench.invalid>\r\n")
    expect(reader, 250)
    sock.sendall(b"RCPT TO:<sink@example.com>\r\n")
    expect(reader, 250)
    sock.sendall(b"DATA\r\n")
    expect(reader, 354)
    sock.sendall(message + b".\r\n")
    expect(reader, 250)


def send_quit(sock, reader):
    sock.sendall(b"QUIT\r\n")
    try:
        reader.reply()
    except (OSError, ConnectionError):
        pass  # the message was taken; a rude close after QUIT is not a failure


def offers_starttls(reader):
    """True when the last reply (EHLO's) lists the STARTTLS extension."""
    return any(line[4:].strip().upper() == b"STARTTLS" for line in reader.lines)


def open_session(host, port, timeout, tls=None, server_name=None, required=True):
    """Connect, greeting, EHLO; with tls, STARTTLS, the handshake and EHLO again: always when required (issue 18's
    clients), else only when the EHLO reply offers it (PHPMailer's default, tlsclient.py).
    Returns (socket, reader, whether a handshake was done)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        expect(reader, 220)
        sock.sendall(b"EHLO client.bench.invalid\r\n")
        expect(reader, 250)
        if tls is None or not (required or offers_starttls(reader)):
            return sock, reader, False
        sock.sendall(b"STARTTLS\r\n")
        expect(reader, 220)
        sock = tls.wrap_socket(sock, server_hostname=server_name)
        reader = Reader(sock)
        sock.sendall(b"EHLO client.bench.invalid\r\n")
        expect(reader, 250)
        return sock, reader, True
    except BaseException:
        sock.close()
        raise


STEPS = ("greeting", "ehlo", "mail", "rcpt", "data", "dot")  # the replies of a plain transaction, in order


def one(host, port, message, timeout, tls=None, server_name=None):
    """Returns the transaction's seconds and, for a plain one, each step's milliseconds (connect() to the 220, then
    from one reply to the next: where a slow message spent its time)."""
    start = time.perf_counter()
    sock, reader, _ = open_session(host, port, timeout, tls, server_name)
    try:
        transaction(sock, reader, message)
        elapsed = time.perf_counter() - start
        marks = [start] + reader.marks
        steps = None
        if len(marks) == len(STEPS) + 1:
            steps = [round((b - a) * 1000.0, 3) for a, b in zip(marks, marks[1:])]
        send_quit(sock, reader)
        return elapsed, steps
    finally:
        sock.close()


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="messages per second; 0: back to back")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--label", default="probe")
    parser.add_argument("--raw", action="store_true", help="also list every latency (ms) as samples_ms")
    parser.add_argument("--starttls", action="store_true", help="STARTTLS after EHLO, then EHLO again (issue 18)")
    parser.add_argument("--server-name", default="mx.bench.invalid", help="the SNI name with --starttls")
    args = parser.parse_args()
    host, port = parse_server(args.server)
    tls = None
    if args.starttls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    samples = []
    steps = []
    errors = []
    begin = time.perf_counter()
    for i in range(args.count):
        if args.rate > 0:
            due = begin + i / args.rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
        try:
            elapsed, step_ms = one(host, port, make_message(args.size, args.label, i), args.timeout, tls, args.server_name)
            samples.append(elapsed)
            steps.append(step_ms)
        except Exception as e:  # every failure is a measured result
            errors.append("%d: %s: %s" % (i, type(e).__name__, e))

    ms = sorted(s * 1000.0 for s in samples)
    result = {
        "label": args.label,
        "sent": args.count,
        "ok": len(samples),
        "failures": len(errors),
        "errors": errors[:5],
        "wall_s": round(time.perf_counter() - begin, 2),
    }
    for name, p in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99)):
        value = percentile(ms, p)
        result[name] = None if value is None else round(value, 3)
    result["max_ms"] = round(ms[-1], 3) if ms else None
    result["mean_ms"] = round(sum(ms) / len(ms), 3) if ms else None
    if args.raw:
        result["samples_ms"] = [round(s * 1000.0, 4) for s in samples]
        if not tls:
            result["steps"] = list(STEPS)
            result["steps_ms"] = steps
    print(json.dumps(result))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
