#!/usr/bin/python3
"""Sends a message with Python's smtplib, the way a customer's script would.

Usage: send_smtplib.py --server HOST:PORT|[V6]:PORT --from A --to B [--to C] --file MSG
                       [--parallel N --label TEXT] [--timeout S]

The message file is sent as bytes (smtplib stuffs dots and keeps CRLF). With
--parallel N, N threads each open their own connection at once and send the
file with one extra first header "X-Test-Sender: <label> <i>", so a test can
match every relayed copy to the user that sent it. Prints one JSON object:
{"sent": n, "errors": [...]} and exits 0 only if every send succeeded.
"""

import argparse
import json
import smtplib
import sys
import threading


def parse_server(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port)
    host, _, port = text.rpartition(":")
    return host, int(port)


def send_one(host, port, args, message, results, index):
    try:
        with smtplib.SMTP(host, port, local_hostname="client.test", timeout=args.timeout) as client:
            refused = client.sendmail(args.sender, args.to, message, mail_options=["BODY=8BITMIME"])
            results[index] = {"ok": True, "refused": {k: [v[0], v[1].decode("latin-1")] for k, v in refused.items()}}
    except smtplib.SMTPResponseException as e:
        results[index] = {"ok": False, "error": type(e).__name__, "code": e.smtp_code,
                          "text": e.smtp_error.decode("latin-1") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)}
    except smtplib.SMTPRecipientsRefused as e:
        results[index] = {"ok": False, "error": "SMTPRecipientsRefused",
                          "refused": {k: [v[0], v[1].decode("latin-1")] for k, v in e.recipients.items()}}
    except Exception as e:  # any other failure is a test result, not a crash
        results[index] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--to", action="append", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--parallel", type=int, default=0)
    parser.add_argument("--label", default="")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    host, port = parse_server(args.server)
    with open(args.file, "rb") as f:
        body = f.read()

    if args.parallel <= 0:
        results = [None]
        send_one(host, port, args, body, results, 0)
    else:
        results = [None] * args.parallel
        threads = []
        for i in range(args.parallel):
            message = ("X-Test-Sender: %s %d\r\n" % (args.label, i)).encode("ascii") + body
            t = threading.Thread(target=send_one, args=(host, port, args, message, results, i))
            threads.append(t)
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    sent = sum(1 for r in results if r and r.get("ok"))
    print(json.dumps({"sent": sent, "results": results}), flush=True)
    sys.exit(0 if sent == len(results) else 1)


if __name__ == "__main__":
    main()
