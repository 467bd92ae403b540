#!/usr/bin/python3
"""A hostile raw SMTP client for the integration tests (stdlib only).

smtp_dialog.py is a polite client: it always waits for the greeting and for one
reply per step. This one does what spamware and broken scripts do: talks before
the greeting, pipelines message bytes behind DATA, streams megabytes without a
line end, trickles a command one byte at a time.

Usage: hostile_client.py DIALOG.json   (prints one JSON object on stdout, in the
same shape as smtp_dialog.py, so the harness parses both the same way)

DIALOG: {"server": "127.0.0.2:25" | "[2001:db8::25]:25", "timeout": seconds,
         "read_greeting": true, "steps": [...]}
Every step has a "label" and one of:
  "send": "..."                      send these bytes (characters 0-255, latin-1), read nothing
  "send_pattern": "...", "bytes": N  send N bytes of the pattern repeated, streamed in 64 KiB chunks
  "trickle": "...", "interval": s    send one byte every s seconds; stop as soon as the server says
                                     something or closes (records "<label> start" at the first byte)
  "read": true                       read one (multi-line) reply
  "read_all": true                   read replies until the server closes or the timeout passes
  "mark": "/path"                    create this file (tells the test that this point was reached)
  "sleep": s                         wait
A send that fails (the server closed or reset) records an "error" entry and ends the dialog.
"""

import json
import select
import socket
import sys
import time


class Peer:
    def __init__(self, sock, start):
        self.sock = sock
        self.start = start
        self.buffer = b""
        self.eof = False

    def now(self):
        return round(time.monotonic() - self.start, 3)

    def read_line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_reply(self, label):
        raw = b""
        record = {"label": label}
        try:
            while True:
                line = self.read_line()
                if line is None:
                    record["eof"] = True
                    break
                raw += line
                if len(line) < 4 or line[3:4] != b"-":
                    break
        except socket.timeout:
            record["timeout"] = True
        except OSError as e:
            record["error"] = "%s: %s" % (type(e).__name__, e)
            self.eof = True
        record["t"] = self.now()
        record["raw"] = raw.decode("latin-1")
        lines = [l.rstrip("\r\n") for l in record["raw"].splitlines(True)]
        record["lines"] = lines
        if lines and lines[-1][:3].isdigit():
            record["code"] = int(lines[-1][:3])
        return record


def parse_server(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, (host, int(port))
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host, int(port))


def send_pattern(sock, pattern, total):
    # Whole repetitions per block, so a pattern of lines stays lines across blocks.
    block = pattern * max(1, 65536 // len(pattern))
    left = total
    while left >= len(block):
        sock.sendall(block)
        left -= len(block)
    if left > 0:
        sock.sendall((pattern * (left // len(pattern) + 1))[:left])


def trickle(sock, peer, label, data, interval, replies):
    for i, byte in enumerate(data):
        if i == 0:
            replies.append({"label": label + " start", "t": peer.now()})
        sock.sendall(bytes([byte]))
        readable, _, _ = select.select([sock], [], [], interval)
        if readable or peer.buffer:
            replies.append(peer.read_reply(label))
            replies[-1]["sent"] = i + 1
            return
    replies.append(peer.read_reply(label))
    replies[-1]["sent"] = len(data)


def run(dialog):
    result = {"replies": []}
    family, address = parse_server(dialog["server"])
    timeout = float(dialog.get("timeout", 30))
    start = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError as e:
        result["connect_error"] = "%s: %s" % (type(e).__name__, e)
        result["elapsed"] = round(time.monotonic() - start, 3)
        return result
    result["local"] = "%s:%d" % sock.getsockname()[:2]
    peer = Peer(sock, start)
    replies = result["replies"]
    if dialog.get("read_greeting", True):
        replies.append(peer.read_reply("GREETING"))
    for step in dialog.get("steps", []):
        label = step.get("label", "STEP")
        try:
            if "send" in step:
                sock.sendall(step["send"].encode("latin-1"))
            elif "send_pattern" in step:
                send_pattern(sock, step["send_pattern"].encode("latin-1"), int(step["bytes"]))
            elif "trickle" in step:
                trickle(sock, peer, label, step["trickle"].encode("latin-1"), float(step["interval"]), replies)
            elif step.get("read"):
                replies.append(peer.read_reply(label))
            elif step.get("read_all"):
                while True:
                    reply = peer.read_reply(label)
                    replies.append(reply)
                    if not reply["raw"] or peer.eof:
                        break
            elif "mark" in step:
                with open(step["mark"], "w", encoding="ascii") as f:
                    f.write("%.3f\n" % (time.monotonic() - start))
            elif "sleep" in step:
                time.sleep(float(step["sleep"]))
        except OSError as e:
            replies.append({"label": label, "error": "%s: %s" % (type(e).__name__, e),
                            "t": round(time.monotonic() - start, 3)})
            result["stopped_at"] = label
            break
    sock.close()
    result["elapsed"] = round(time.monotonic() - start, 3)
    return result


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        dialog = json.load(f)
    print(json.dumps(run(dialog)), flush=True)


if __name__ == "__main__":
    main()
