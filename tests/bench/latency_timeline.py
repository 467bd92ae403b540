#!/usr/bin/python3
"""Where a message's added latency goes, from a packet capture (issue 19, item 5).

Usage (root, while tests/bench/latency.py runs path B inside the bench's namespace NS):
    ip netns exec NS tcpdump -i lo -s 0 -B 16384 -w b.pcap tcp     # stop it with SIGTERM afterwards
    tests/bench/latency_timeline.py b.pcap [more.pcap ...]
    tests/bench/latency_timeline.py --direct a.pcap                # path A' (client straight to the sink; not yet tried)

B is client -> daemon (127.0.0.1:24; the daemon's packets come back un-NATed as 127.0.0.2:25) and daemon -> sink
(127.0.0.2:25, a reused session). For every message (SYN to the 250 after the final dot) each gap between two
packets is charged to whoever had the turn: "daemon" from a packet in (client's or sink's) to the packet it caused
out, "sink" from our command to its reply, "client" from our reply to its next command. Printed: per message the
total and the sums per party (p50/mean/p90), then every kind of gap. Nothing inside the daemon is needed, so the
figures are the daemon's real residence times, with no instrumentation in the way.
"""
import struct, sys, statistics, collections

def packets(path):
    with open(path, "rb") as f:
        gh = f.read(24)
        nano = struct.unpack("<I", gh[:4])[0] == 0xa1b23c4d
        link = struct.unpack("<I", gh[20:24])[0]
        while True:
            h = f.read(16)
            if len(h) < 16: return
            sec, frac, incl, orig = struct.unpack("<IIII", h)
            data = f.read(incl)
            t = sec + frac / (1e9 if nano else 1e6)
            ip = data[14 if link == 1 else 0:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6: continue
            ihl = (ip[0] & 15) * 4
            tot = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            if len(tcp) < 20: continue  # the last record of a capture stopped mid-write
            sp, dp = struct.unpack(">HH", tcp[:4])
            yield t, ".".join(map(str, ip[12:16])), sp, ".".join(map(str, ip[16:20])), dp, tcp[13], ip[ihl + (tcp[12] >> 4) * 4:tot]

DAEMON, SINK = ("127.0.0.1", 24), ("127.0.0.2", 25)

def word(pl):
    w = pl[:4].decode("latin1").strip()
    return w if w[:1].isalpha() or w[:3].isdigit() else "body"

def main(path, direct):
    ev, clients = [], set()
    front = SINK if direct else DAEMON
    for t, s, sp, d, dp, fl, pl in packets(path):
        if (d, dp) == front:
            if fl & 0x02 and not fl & 0x10:
                clients.add(sp); ev.append((t, "SYN", b""))
            elif sp in clients and pl: ev.append((t, "C>D", pl))
        elif (s, sp) in (DAEMON, SINK) and dp in clients:
            if pl: ev.append((t, "D>C", pl))
        elif not direct and (d, dp) == SINK and pl: ev.append((t, "D>U", pl))
        elif not direct and (s, sp) == SINK and pl: ev.append((t, "U>D", pl))
    msgs, cur = [], None
    for e in ev:
        if e[1] == "SYN": cur = [e]; msgs.append(cur)
        elif cur is not None: cur.append(e)
    stats = collections.defaultdict(list)
    per = collections.defaultdict(list)
    for m in msgs:
        t0 = m[0][0]; last = m[0]; indata = False; total = None; sums = collections.Counter()
        for e in m[1:]:
            kind = e[1]
            if last[1] in ("SYN", "C>D", "U>D") and kind in ("D>C", "D>U"):
                cat = "daemon" if not direct else "sink"
                what = "%s %s->%s %s" % (last[1], word(last[2]) if last[2] else "", kind, word(e[2]))
                if kind == "D>C" and indata and e[2][:3] == b"250": what += " (final)"
                stats["%s: %s" % (cat, what)].append(e[0] - last[0]); sums[cat] += e[0] - last[0]
            elif last[1] == "D>U" and kind == "U>D":
                stats["sink: " + word(last[2])].append(e[0] - last[0]); sums["sink"] += e[0] - last[0]
            elif last[1] == "D>C" and kind == "C>D":
                stats["client: after " + word(last[2])].append(e[0] - last[0]); sums["client"] += e[0] - last[0]
            if kind == "D>C" and indata and e[2][:3] == b"250":
                total = e[0] - t0; break
            if kind == "D>C" and e[2].startswith(b"354"): indata = True
            last = e
        if total is not None:
            per["TOTAL SYN..final 250"].append(total)
            for k, v in sums.items(): per["sum " + k].append(v)
    n = len(per["TOTAL SYN..final 250"])
    print("%s: %d messages" % (path, n))
    for k in sorted(per): v = sorted(per[k]); print("  %-44s p50 %7.3f ms  mean %7.3f  p90 %7.3f" % (k, statistics.median(v) * 1e3, statistics.mean(v) * 1e3, v[int(len(v) * 0.9)] * 1e3))
    for k in sorted(stats, key=lambda k: (k.split(":")[0], -statistics.median(stats[k]))):
        v = sorted(stats[k])
        print("  %-44s n=%4d  p50 %7.3f ms  mean %7.3f  p90 %7.3f" % (k, len(v), statistics.median(v) * 1e3, statistics.mean(v) * 1e3, v[int(len(v) * 0.9)] * 1e3))

args = [a for a in sys.argv[1:] if a != "--direct"]
for p in args: main(p, "--direct" in sys.argv)
