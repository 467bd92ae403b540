#!/usr/bin/python3
"""Drives `openssl s_client -starttls smtp -verify_return_error` through one message, waiting for each reply
(s_client itself does EHLO and STARTTLS; we speak SMTP over its stdin/stdout after the handshake).

Usage: starttls_openssl.py --host NAME --connect ADDRESS --cafile CA --from A --to B --file MSG
(s_client's name lookup sets AI_ADDRCONFIG, which finds nothing in a namespace with only loopback addresses: it
dials ADDRESS, NAME's address, and asks for NAME with -servername, as `s_client -connect IP -servername NAME` does.)
Prints one JSON object: {"ok": bool, "replies": [...], "stderr": "...", "exit": n}.
"""

import argparse
import json
import subprocess


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--connect", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--file", required=True)
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        body = f.read()

    command = ["openssl", "s_client", "-starttls", "smtp", "-connect", args.connect + ":25", "-servername", args.host,
               "-verify_return_error", "-verify_hostname", args.host, "-CAfile", args.cafile, "-brief", "-ign_eof"]
    # An absolute path: the client runs with a clean environment.
    command[0] = "/usr/bin/openssl"
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    replies = []

    def reply():
        lines = []
        while True:
            line = process.stdout.readline()
            if not line:
                return None
            lines.append(line.decode("latin-1").rstrip("\r\n"))
            if len(lines[-1]) < 4 or lines[-1][3] == " ":
                replies.append(lines[-1])
                return lines[-1]

    def command_line(text):
        process.stdin.write(text + b"\r\n")
        process.stdin.flush()
        return reply()

    ok = False
    try:
        steps = [b"EHLO client.test", b"MAIL FROM:<" + args.sender.encode() + b">", b"RCPT TO:<" + args.to.encode() + b">", b"DATA"]
        codes = ["250", "250", "250", "354"]
        good = True
        for step, code in zip(steps, codes):
            answer = command_line(step)
            if answer is None or not answer.startswith(code):
                good = False
                break
        if good:
            process.stdin.write(body + b".\r\n")
            process.stdin.flush()
            final = reply()
            ok = final is not None and final.startswith("250")
            command_line(b"QUIT")
    except (BrokenPipeError, ValueError):
        pass
    try:
        process.stdin.close()
    except (BrokenPipeError, ValueError):
        pass
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    stderr = process.stderr.read()
    print(json.dumps({"ok": ok, "replies": replies, "stderr": stderr.decode("latin-1"), "exit": process.returncode}))

if __name__ == "__main__":
    main()
