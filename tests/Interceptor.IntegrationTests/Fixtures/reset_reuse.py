#!/usr/bin/python3
"""Two customers on one 4-tuple, one after the other (tests/HOSTILE.md: a reset connection's tuple reused):

  reset PORT HOST HPORT                   connect from 127.0.0.1:PORT to HOST:HPORT and reset at once (SO_LINGER 0);
                                          prints {"reset": PORT}
  close PORT HOST HPORT                   the same, closed the ordinary way (FIN; the socket is left to the kernel);
                                          prints {"closed": PORT}
  vanish PORT HOST HPORT                  closed with TCP_LINGER2 -1: the kernel frees the socket once its FIN is
                                          acknowledged, nothing is left to look up (it answers that ACK with a reset,
                                          so the daemon's side is closed too); prints {"closed": PORT}
  send PORT HOST HPORT FROM TO BODYFILE   connect from 127.0.0.1:PORT, print {"connected": PORT}, then wait for the
                                          greeting and send one message; prints one JSON line with every reply

A client's reset leaves its conntrack entry in CLOSE (10 s), and the next SYN on the same tuple has conntrack delete it
and make a new one, NAT-ed again, and (the reply tuple being free) onto the same port: while the daemon is behind, its accept queue holds the dead connection and
the live one with exactly the same addresses.
"""
import json, socket, struct, sys

def bound(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s

def reply(f):
    lines = []
    while True:
        line = f.readline().decode("latin-1")
        if not line:
            lines.append("<closed>")
            break
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            break
    return "\n".join(lines)

mode, port, host, hport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
c = bound(port)
c.connect((host, hport))
if mode in ("reset", "close", "vanish"):
    if mode == "reset":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if mode == "vanish":
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
    c.close()
    print(json.dumps({"reset" if mode == "reset" else "closed": port}), flush=True)
    sys.exit(0)

sender, recipient, body = sys.argv[5], sys.argv[6], open(sys.argv[7], "rb").read()
print(json.dumps({"connected": port}), flush=True)
c.settimeout(60)
f = c.makefile("rb")
result = {"greeting": reply(f)}
if result["greeting"].startswith("220"):
    for name, command in [("ehlo", b"EHLO client.test\r\n"), ("mail", b"MAIL FROM:<%s>\r\n" % sender.encode()),
                          ("rcpt", b"RCPT TO:<%s>\r\n" % recipient.encode()), ("data", b"DATA\r\n")]:
        c.sendall(command)
        result[name] = reply(f)
    if result["data"].startswith("354"):
        c.sendall(body)  # dot-stuffed, its final "." line included
        result["final"] = reply(f)
    c.sendall(b"QUIT\r\n")
    result["quit"] = reply(f)
print(json.dumps(result), flush=True)
