#!/usr/bin/python3
"""A customer's SYN that conntrack files under a connection it already has (tests/HOSTILE.md 12.12), in steps:

  listen PORT SECONDS           as the customer: listen on 127.0.0.1:PORT (SO_REUSEPORT), print "listening", wait
  syn SRC SPORT DST DPORT       as root: one TCP SYN from SRC:SPORT (raw socket, so the source is ours to choose)
  connect PORT HOST HPORT [until-reset]   as anyone: connect from 127.0.0.1:PORT (SO_REUSEPORT) to HOST:HPORT
  abort-server ADDR PORT SECONDS   as root: a "mail server" that greets each connection and resets it (SO_LINGER 0);
                                   prints one JSON line per connection it accepted
  nflog-bind GROUP SECONDS      as root: bind NFLOG GROUP as another logger would (ulogd), print "bound", hold it

Answering: the SYN from the mail server's port 25 makes the listener answer, and the mail server resets that answer;
conntrack keeps an entry whose reply direction is exactly the customer's connection back. Reusing: root's connection
from PORT is reset by the server; conntrack keeps its entry (10 s), and a SYN from PORT to the server is "established".
connect prints one JSON line: "connected" with the first line the server sent, "refused" (a reset) or "timeout".
"""
import json, socket, struct, sys, time

def bound(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    return s

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF

def syn(src, sport, dst, dport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.sendto(ip + tcp, (dst, 0))

mode = sys.argv[1]
if mode == "listen":
    listener = bound(int(sys.argv[2]))
    listener.listen(8)
    print("listening", flush=True)
    time.sleep(float(sys.argv[3]))
elif mode == "syn":
    syn(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    print("sent")
elif mode == "connect":
    c = bound(int(sys.argv[2]))
    c.settimeout(3)
    try:
        c.connect((sys.argv[3], int(sys.argv[4])))
        line = c.recv(1024).decode("latin-1").split("\r\n")[0]
        ended = None
        if sys.argv[5:] == ["until-reset"]:
            # Close only after the server's reset: a FIN of ours first would let conntrack reopen the entry.
            try:
                while c.recv(1024):
                    pass
                ended = "end of stream"
            except ConnectionResetError:
                ended = "reset"
        print(json.dumps({"outcome": "connected", "greeting": line, "ended": ended}))
    except ConnectionRefusedError:
        print(json.dumps({"outcome": "refused"}))
    except socket.timeout:
        print(json.dumps({"outcome": "timeout"}))
elif mode == "abort-server":
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[2], int(sys.argv[3])))
    server.listen(8)
    server.settimeout(float(sys.argv[4]))
    print("listening", flush=True)
    try:
        while True:
            peer, address = server.accept()
            peer.sendall(b"220 aborting.test ESMTP\r\n")
            time.sleep(0.2)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
            print(json.dumps({"accepted": "%s:%d" % address}), flush=True)
    except socket.timeout:
        pass
elif mode == "nflog-bind":
    # NFULNL_MSG_CONFIG with NFULA_CFG_CMD BIND (nfnetlink_log.h); the answer is an NLMSG_ERROR carrying the errno.
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
    nl.bind((0, 0))
    request = struct.pack("=IHHII", 28, 0x0401, 5, 1, 0) + struct.pack("!BBH", 0, 0, int(sys.argv[2])) + struct.pack("=HHB3x", 5, 1, 1)
    nl.send(request)
    errno = -struct.unpack("=i", nl.recv(4096)[16:20])[0]
    print("bound" if errno == 0 else "errno %d" % errno, flush=True)
    time.sleep(float(sys.argv[3]))
else:
    sys.exit("unknown mode " + mode)
