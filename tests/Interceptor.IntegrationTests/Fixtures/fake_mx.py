#!/usr/bin/python3
"""A scriptable fake MX for the integration tests (stdlib only, Debian's python3).

It behaves like a strict MTA where it matters to the tests: DATA ends only at
CRLF.CRLF, so a smuggled "\\n.\\n" can never end a message here; everything the
relay does wrong must therefore show up in what is recorded.

Each accepted message is recorded in --dir as <n>.eml (exact bytes after
dot-unstuffing, CRLF kept, final CRLF.CRLF removed but the last line's CRLF
kept) and <n>.json (envelope). The .json is written last and via rename, so a
reader that counts *.json never sees a half-written message. Every connection
and every command/reply is appended to events.jsonl so a test can also assert
"nobody connected at all".

Behaviour comes from --script (JSON), all keys optional:
  greeting             "220 fake-mx.test ESMTP"; a 4xx/5xx greeting closes after sending
  greeting_delay       seconds to wait before the greeting
  extensions           EHLO keywords after the first line
  mail_reply           reply to every MAIL FROM instead of 250
A reply may hold several lines separated by CRLF ("550-5.1.1 a\r\n550 5.1.1 b").
  rcpt_replies         {address: reply} per RCPT address (case-insensitive)
  data_reply           reply to the DATA command instead of 354
  final_reply          reply after the final dot instead of "250 2.0.0 Ok: queued as <n>"
  final_delay          seconds to wait before the final-dot reply
  final_trickle        seconds between the final-dot reply's bytes: sent one at a time
  drop                 "before_final_dot": close as soon as message bytes arrive;
                       "after_final_dot": read the whole message, then close without a reply
"""

import argparse
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time

DEFAULT_EXTENSIONS = ["SIZE 52428800", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"]
MAX_LINE = 64 * 1024
MAX_MESSAGE = 64 * 1024 * 1024


class State:
    """Shared by all connections: the script, the output directory and the message counter."""

    def __init__(self, script, directory):
        self.script = script
        self.directory = directory
        self.lock = threading.Lock()
        self.count = 0

    def next_number(self):
        with self.lock:
            self.count += 1
            return self.count

    def event(self, **fields):
        fields["t"] = time.time()
        line = json.dumps(fields, ensure_ascii=True) + "\n"
        with self.lock:
            with open(os.path.join(self.directory, "events.jsonl"), "a", encoding="ascii") as f:
                f.write(line)


class Closed(Exception):
    pass


class Connection:
    """One SMTP session; reads commands terminated by LF (like Postfix) but DATA only by CRLF.CRLF."""

    def __init__(self, sock, peer, state):
        self.sock = sock
        self.peer = peer
        self.state = state
        self.buffer = b""
        self.cid = "%s:%d" % (peer[0], peer[1])

    def send(self, reply, trickle=0.0):
        self.state.event(kind="reply", conn=self.cid, reply=reply)
        wire = reply.encode("utf-8") + b"\r\n"
        if trickle <= 0:
            self.sock.sendall(wire)
            return
        for i in range(len(wire)):
            self.sock.sendall(wire[i:i + 1])
            time.sleep(trickle)

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed()
        self.buffer += chunk

    def read_line(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise Closed()
            self.fill()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def read_data(self, drop_early):
        # The terminator may directly follow the DATA command's CRLF, so search with a virtual CRLF in front.
        while True:
            if drop_early and self.buffer:
                raise Closed()
            probe = b"\r\n" + self.buffer
            end = probe.find(b"\r\n.\r\n")
            if end >= 0:
                raw = probe[2:end + 2]  # up to and including the CRLF before the dot
                self.buffer = probe[end + 5:]
                return unstuff(raw)
            if len(self.buffer) > MAX_MESSAGE:
                raise Closed()
            self.fill()

    def run(self):
        script = self.state.script
        self.state.event(kind="connect", conn=self.cid)
        delay = float(script.get("greeting_delay", 0))
        if delay > 0:
            time.sleep(delay)
        greeting = script.get("greeting", "220 fake-mx.test ESMTP fake")
        self.send(greeting)
        if not greeting.startswith("2"):
            return
        helo = None
        mail_from = None
        mail_params = ""
        rcpts = []
        while True:
            line = self.read_line()
            text = line.decode("utf-8", "replace")
            self.state.event(kind="command", conn=self.cid, line=text)
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                helo = text[5:].strip()
                exts = script.get("extensions", DEFAULT_EXTENSIONS)
                lines = ["fake-mx.test greets " + helo] + list(exts)
                for i, item in enumerate(lines):
                    sep = " " if i == len(lines) - 1 else "-"
                    self.send("250" + sep + item)
            elif verb == "HELO":
                helo = text[5:].strip()
                self.send("250 fake-mx.test")
            elif verb == "MAIL":
                m = re.match(r"(?i)^MAIL FROM:\s*<([^>]*)>\s*(.*)$", text)
                if helo is None:
                    self.send("503 5.5.1 Error: send HELO/EHLO first")
                elif mail_from is not None:
                    self.send("503 5.5.1 Error: nested MAIL command")
                elif not m:
                    self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
                elif script.get("mail_reply"):
                    self.send(script["mail_reply"])
                else:
                    mail_from, mail_params = m.group(1), m.group(2)
                    self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"(?i)^RCPT TO:\s*<([^>]*)>\s*(.*)$", text)
                if mail_from is None:
                    self.send("503 5.5.1 Error: need MAIL command")
                elif not m:
                    self.send("501 5.5.4 Syntax: RCPT TO:<address>")
                else:
                    replies = {k.lower(): v for k, v in script.get("rcpt_replies", {}).items()}
                    reply = replies.get(m.group(1).lower(), "250 2.1.5 Ok")
                    if reply.startswith("2"):
                        rcpts.append(m.group(1))
                    self.send(reply)
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    self.send("554 5.5.1 Error: no valid recipients")
                    continue
                if script.get("data_reply"):
                    self.send(script["data_reply"])
                    continue
                self.send("354 End data with <CR><LF>.<CR><LF>")
                drop = script.get("drop")
                message = self.read_data(drop == "before_final_dot")
                self.state.event(kind="data", conn=self.cid, size=len(message))
                if drop == "after_final_dot":
                    return
                final_delay = float(script.get("final_delay", 0))
                if final_delay > 0:
                    time.sleep(final_delay)
                reply = script.get("final_reply")
                if reply is None or reply.startswith("2"):
                    number = self.record(message, mail_from, mail_params, rcpts, helo)
                    reply = reply or "250 2.0.0 Ok: queued as %d" % number
                self.send(reply, float(script.get("final_trickle", 0)))
                mail_from, mail_params, rcpts = None, "", []
            elif verb == "RSET":
                mail_from, mail_params, rcpts = None, "", []
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "VRFY":
                self.send("252 2.0.0 Cannot VRFY user")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Error: command not recognized")

    def record(self, message, mail_from, mail_params, rcpts, helo):
        number = self.state.next_number()
        base = os.path.join(self.state.directory, str(number))
        with open(base + ".eml", "wb") as f:
            f.write(message)
        envelope = {"mail_from": mail_from, "rcpt_to": list(rcpts), "mail_params": mail_params,
                    "client": self.cid, "helo": helo}
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(envelope, f)
        os.rename(base + ".json.tmp", base + ".json")
        self.state.event(kind="accepted", conn=self.cid, number=number)
        return number


def unstuff(raw):
    """Remove one leading dot from every CRLF-terminated line (RFC 5321 4.5.2); bare CR/LF stay data."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = Connection(self.request, self.client_address, self.server.state)
        try:
            conn.run()
        except (Closed, ConnectionError, OSError) as e:
            conn.state.event(kind="closed", conn=conn.cid, error=type(e).__name__)
        else:
            conn.state.event(kind="closed", conn=conn.cid)


class Server4(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    # A test may also connect out of the MX's own address and port (root, as another host's MTA would from port 25).
    allow_reuse_port = True
    daemon_threads = True
    request_queue_size = 128


class Server6(Server4):
    address_family = socket.AF_INET6


def parse_address(text):
    m = re.match(r"^\[(.+)\]:(\d+)$", text)
    if m:
        return Server6, (m.group(1), int(m.group(2)))
    host, _, port = text.rpartition(":")
    return Server4, (host, int(port))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--script")
    args = parser.parse_args()
    listens = args.listen or ["127.0.0.2:25", "[2001:db8::25]:25"]
    script = {}
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            script = json.load(f)
    state = State(script, args.dir)
    servers = []
    for text in listens:
        cls, address = parse_address(text)
        server = cls(address, Handler)
        server.state = state
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    # The harness waits for this line before letting a test connect.
    print("fake-mx ready " + " ".join(listens), flush=True)
    try:
        sys.stdin.read()  # runs until the harness closes stdin or kills us
    finally:
        for server in servers:
            server.shutdown()


if __name__ == "__main__":
    main()
