#!/usr/bin/python3
"""A raw SMTP client for the integration tests: sends exactly the bytes it is told to.

smtplib normalises line endings and stuffs dots, which would hide exactly the
bugs the smuggling and pass-through tests look for, so this client writes raw
bytes and records every reply line verbatim with its time since connect.

Usage: smtp_dialog.py DIALOG.json  (prints one JSON object on stdout)

DIALOG: {"server": "127.0.0.2:25" | "[2001:db8::25]:25", "timeout": seconds,
         "steps": [ {"label": "EHLO", "send": "EHLO x\\r\\n", "expect": "23"},
                    {"label": "BODY", "send_file": "/path", "expect": "2"},
                    {"label": "TAIL", "read_all": true} ]}
"send" is a string whose characters are bytes 0-255 (latin-1). The greeting is
always read first. After each send one reply is read; if its first digit is not
in "expect" (default "23") the dialog stops, sends QUIT and reads what comes.
"read_all" reads replies until the peer closes or the timeout passes.
"""

import json
import socket
import sys
import time


class Peer:
    def __init__(self, sock, start, timeout):
        self.sock = sock
        self.start = start
        self.timeout = timeout
        self.buffer = b""
        self.eof = False

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
        """One reply, possibly multi-line; returns a record even on EOF or timeout."""
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
        record["t"] = round(time.monotonic() - self.start, 3)
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


def run(dialog):
    result = {"replies": []}
    family, address = parse_server(dialog["server"])
    timeout = float(dialog.get("timeout", 60))
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
    peer = Peer(sock, start, timeout)
    replies = result["replies"]
    greeting = peer.read_reply("GREETING")
    replies.append(greeting)
    ok = str(greeting.get("code", 0))[0] in "2"
    steps = dialog.get("steps", [])
    for step in steps if ok else []:
        label = step.get("label", "STEP")
        if "pause" in step:
            # Silence from the client (an idle script), with the connection held open.
            time.sleep(float(step["pause"]))
            continue
        try:
            if "send" in step:
                sock.sendall(step["send"].encode("latin-1"))
            elif "send_file" in step:
                with open(step["send_file"], "rb") as f:
                    sock.sendall(f.read())
        except OSError as e:
            replies.append({"label": label, "error": "%s: %s" % (type(e).__name__, e),
                            "t": round(time.monotonic() - start, 3)})
            ok = False
            break
        if step.get("read_all"):
            while not peer.eof:
                reply = peer.read_reply(label)
                if not reply["raw"] and (reply.get("eof") or reply.get("timeout") or reply.get("error")):
                    replies.append(reply)
                    break
                replies.append(reply)
            continue
        if step.get("no_reply"):
            continue
        reply = peer.read_reply(label)
        replies.append(reply)
        if str(reply.get("code", 0))[0] not in step.get("expect", "23"):
            result["stopped_at"] = label
            ok = False
            break
    if not ok and not peer.eof:
        # Leave politely so the server side sees a clean end; ignore what fails here.
        try:
            sock.sendall(b"QUIT\r\n")
            replies.append(peer.read_reply("QUIT"))
        except OSError:
            pass
    sock.close()
    result["elapsed"] = round(time.monotonic() - start, 3)
    return result


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        dialog = json.load(f)
    print(json.dumps(run(dialog)), flush=True)


if __name__ == "__main__":
    main()
