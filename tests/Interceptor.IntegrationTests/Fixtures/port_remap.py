#!/usr/bin/python3
"""Makes NAT move a redirected connection to another client port, then sends one message over it.

Usage: port_remap.py --first HOST:PORT --second HOST:PORT --from ADDR --to ADDR --body FILE [--ports A-B]

The first connection takes an ephemeral port P, reads the greeting and QUITs. The second binds to
the same P and connects to another destination. Both are redirected to the daemon's one listener,
so their reply tuples (listener -> client:P) would be equal while conntrack still tracks the first
(TIME_WAIT, two minutes): the NAT gives the second one another port, and the daemon sees a port
no client socket has. The second connection then runs a whole transaction; BODY is the DATA
payload, already dot-stuffed and ending in CRLF.CRLF. Prints one JSON object: the port and every
reply of both connections, verbatim.

With --ports A-B, one such attempt is made from each port P from A to B (bound explicitly), one after
the other, and the JSON object is {"attempts": [one object as above per port]}; a port that cannot be
bound gives {"port": P, "error": "..."}.
"""

import argparse
import json
import socket


def parse(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def read_reply(sock_file):
    """One SMTP reply, all its lines; "" when the peer closed."""
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            break
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            break
    return "\n".join(lines)


def open_from(port, target):
    # SO_REUSEADDR on both sockets: the second may bind P while the first sits in TIME_WAIT.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(30)
    sock.bind(("127.0.0.1", port))
    sock.connect(parse(target))
    return sock


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", required=True)
    parser.add_argument("--second", required=True)
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--ports")
    args = parser.parse_args()
    if args.ports:
        first, _, last = args.ports.partition("-")
        attempts = []
        for port in range(int(first), int(last) + 1):
            try:
                attempts.append(attempt(args, port))
            except OSError as e:
                attempts.append({"port": port, "error": "%s: %s" % (type(e).__name__, e)})
        print(json.dumps({"attempts": attempts}))
    else:
        print(json.dumps(attempt(args, 0)))


def attempt(args, first_port):
    result = {}
    first = open_from(first_port, args.first)
    port = first.getsockname()[1]
    result["port"] = port
    with first, first.makefile("rb") as reader:
        result["first_greeting"] = read_reply(reader)
        first.sendall(b"QUIT\r\n")
        result["first_quit"] = read_reply(reader)

    second = open_from(port, args.second)
    result["second_port"] = second.getsockname()[1]
    replies = []
    with second, second.makefile("rb") as reader:
        result["second_greeting"] = read_reply(reader)
        if result["second_greeting"].startswith("220"):
            with open(args.body, "rb") as body:
                payload = body.read()
            for label, data in [
                ("EHLO", b"EHLO client.test\r\n"),
                ("MAIL", b"MAIL FROM:<" + args.sender.encode() + b">\r\n"),
                ("RCPT", b"RCPT TO:<" + args.to.encode() + b">\r\n"),
                ("DATA", b"DATA\r\n"),
                ("BODY", payload),
                ("QUIT", b"QUIT\r\n"),
            ]:
                second.sendall(data)
                reply = read_reply(reader)
                replies.append({"label": label, "reply": reply})
                if not reply[:1] in ("2", "3"):
                    break
    result["second_replies"] = replies
    return result


if __name__ == "__main__":
    main()
