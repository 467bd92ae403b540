#!/usr/bin/python3
"""Sends one message with smtplib after starttls(), as most tutorials do.

Usage: starttls_smtplib.py --host NAME --from A --to B --file MSG (--cafile CA | --system-trust | --no-verify)

--cafile: a verifying context that trusts CA alone (the test-local trust store);
--system-trust: a verifying context with the system's default store (the CA not in it);
--no-verify: no certificate or name check.
Prints one JSON object: {"ok": bool, "offered": bool, "san": [...], "error": "..."}.
"""

import argparse
import json
import smtplib
import ssl


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--from", dest="sender", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--file", required=True)
    trust = parser.add_mutually_exclusive_group(required=True)
    trust.add_argument("--cafile")
    trust.add_argument("--system-trust", action="store_true")
    trust.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        body = f.read()

    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
    elif args.system_trust:
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    result = {"ok": False, "offered": None, "san": []}
    try:
        with smtplib.SMTP(args.host, args.port, local_hostname="client.test", timeout=60) as client:
            client.ehlo()
            result["offered"] = client.has_extn("starttls")
            client.starttls(context=context)
            cert = client.sock.getpeercert()
            if cert:
                result["san"] = ["%s:%s" % (kind, value) for kind, value in cert.get("subjectAltName", ())]
            client.ehlo()
            client.sendmail(args.sender, [args.to], body)
            result["ok"] = True
    except Exception as e:  # the failure is the test's result
        result["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
