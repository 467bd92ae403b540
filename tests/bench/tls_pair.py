"""The TLS path pair of the benchmark (issue 19, item 4): A_tls and B_tls, imported by bench.py.

Real MXs offer STARTTLS and legacy scripts (PHPMailer's default) use it when offered. The pair measures what
that costs the host with and without the daemon in between:

  the MX   a private Postfix smtpd on TLS_MX (a second instance, not the relay of path C), its own throwaway
           self-signed RSA-2048 certificate made by openssl for this run, smtpd_tls_security_level=may,
           smtpd_tls_loglevel=1 (one "TLS connection established" line per handshake). It does not queue:
           smtpd_proxy_filter hands every message in lock-step to an smtp-sink behind it (MX_SINK), and the
           250 after the final dot is the sink's. The alternative, delivering to discard(8), writes every
           message to the queue (a file written and fsynced on disk, then cleanup, qmgr and discard) and costs the
           MX more per message; `-- --tls-mx discard` measures it (figures in MxInstance's docstring).
           One identical instance in each namespace.
  client   tlsclient.py as the customer user (setpriv): STARTTLS when offered, no certificate check, one message
           per connection, --tls-streams parallel streams; its CPU (all streams) is counted.
  A_tls    the client straight to the MX in the namespace without any nft table (as A).
  B_tls    the client through the daemon (the default configuration: ClientTls.Mode Off, so the daemon's
           greeting offers no STARTTLS and the client's loopback hop is plain; upstream the daemon does STARTTLS
           opportunistically, unverified, and keeps the session for the next client, Relay.ReuseConnections).

Rounds alternate A_tls, B_tls (the same minutes of a shared host). Per path: msg/s (the client's wall time; each
250 came from the sink behind the MX, which is checked to have every message), CPU per message of the host's
processes (client; client + daemon) and of the MX (every process of its Postfix instance, with the reaped ones,
and its sink: another machine in reality), and handshakes per message, counted twice: by the client (its own)
and at the MX from its log (connections too, from smtpd's "connect from" lines: for B_tls, how far the daemon's
upstream sessions were reused).
"""

import json
import os
import subprocess
import time

TLS_MX = "127.0.0.5:25"      # the STARTTLS MX (Postfix smtpd), in both namespaces
MX_SINK = "127.0.0.5:10026"  # the smtp-sink behind it (its smtpd_proxy_filter)
TARGET = "B_tls ≥ A_tls"


def fail(b, text):
    """b: the bench.py module (run as __main__, so its Failure is reached through it, not by importing bench)."""
    raise b.Failure(text)


class MxInstance:
    """One private Postfix smtpd offering STARTTLS, in one namespace, with its own configuration, queue and log.

    Delivery: proxy (smtpd_proxy_filter to an smtp-sink) rather than discard(8), because it costs the MX less per
    message. Measured 2026-12-02 06:45 UTC with `tests/bench/run --tls-only -- --rounds 2 --tls-messages 300
    --tls-streams 4 --tls-mx discard|proxy` (load average 20-25, so only the ratio means much), the MX's CPU per
    message (every process of the instance, and the sink for proxy): discard 9,117 µs on A_tls and 4,833 on B_tls,
    proxy 7,267 and 3,500. With discard every message is a queue file (written to disk and fsynced by cleanup,
    then qmgr schedules it and discard(8) deletes it), three more processes touched per message; with proxy smtpd
    relays the message in lock-step to the sink over one more loopback connection, and nothing is stored.
    """

    def __init__(self, bench, b, ns, label, certificate, key, delivery):
        self.bench, self.b, self.ns, self.delivery = bench, b, ns, delivery
        self.dir = os.path.join(bench.work, "tls-mx-" + label)
        self.etc = os.path.join(self.dir, "etc")
        self.maillog = os.path.join(self.dir, "maillog")
        self.sink = None
        queue, data = os.path.join(self.dir, "queue"), os.path.join(self.dir, "data")
        for path in (self.etc, queue, data):
            os.makedirs(path, exist_ok=True)
        os.chmod(self.dir, 0o755)
        subprocess.run(["chown", "postfix", data], check=True)
        host = TLS_MX.rsplit(":", 1)[0]
        # Postfix's inet_interfaces wants an address of an interface; the namespaces are deleted at the end.
        subprocess.run(["ip", "-n", ns, "addr", "replace", host + "/32", "dev", "lo"], check=True)
        if delivery == "proxy":
            self.sink = b.Sink(bench, ns, MX_SINK, os.path.join(self.dir, "sink.out"))
            bench.sinks.append(self.sink)
            handoff = "smtpd_proxy_filter = %s\nsmtpd_proxy_ehlo = mx.tls.bench.invalid\n" % MX_SINK
        else:
            handoff = "default_transport = discard:bench\nrelay_transport = discard:bench\n"
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("""# The STARTTLS MX of the benchmark's A_tls/B_tls pair: a private instance in a throwaway namespace.
{instance}
myhostname = mx.tls.bench.invalid
inet_interfaces = {host}
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtpd_banner = $myhostname ESMTP
maillog_file = {maillog}
maillog_file_prefixes = {dir}
biff = no
{handoff}""".format(instance=b.postfix_instance(queue, data), host=host, cert=certificate, key=key, maillog=self.maillog, dir=self.dir,
                    handoff=handoff))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write("""# service type private unpriv chroot wakeup maxproc command (no chroot: a private test instance)
{listen} inet n - n - - smtpd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
anvil     unix  -       -       n       -       1       anvil
rewrite   unix  -       -       n       -       -       trivial-rewrite
proxymap  unix  -       -       n       -       -       proxymap
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
discard   unix  -       -       n       -       -       discard
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
postlog   unix-dgram n  -       n       -       1       postlogd
""".format(listen=TLS_MX))

    def start(self):
        self.bench.run(["/usr/sbin/postfix", "-c", self.etc, "start"], ns=self.ns)
        self.bench.wait_listening(TLS_MX, 20, "the STARTTLS MX (Postfix)", ns=self.ns)

    def stop(self):
        if os.path.exists(os.path.join(self.dir, "queue", "pid", "master.pid")):
            self.bench.run(["/usr/sbin/postfix", "-c", self.etc, "stop"], check=False, timeout=60, ns=self.ns)

    def master_pid(self):
        with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
            return int(f.read().split()[0])

    def cpu_ticks(self):
        """The instance's CPU: master with its reaped children, its live children, and the sink behind it. A child
        alive at the first reading and reaped before the second moves into master's figure whole, so a difference
        of two readings counts it exactly once."""
        master = self.master_pid()
        total = self.b.proc_cpu_ticks(master, children=True)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        parent = int(f.read().rpartition(")")[2].split()[1])
                except (OSError, ValueError, IndexError):
                    continue  # gone meanwhile
                if parent == master:
                    total += self.b.proc_cpu_ticks(int(entry))
        if self.sink is not None:
            total += self.b.proc_cpu_ticks(self.sink.proc.pid)
        return total

    def log_counts(self):
        """(connections, TLS handshakes, messages delivered to discard) so far, from the instance's log. postlogd
        writes asynchronously: the counts are read until two readings 0.3 s apart agree."""
        previous = None
        for _ in range(100):
            counts = [0, 0, 0]
            try:
                with open(self.maillog, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if "/smtpd[" in line:
                            counts[0] += ": connect from " in line
                            counts[1] += "TLS connection established from " in line
                        elif "status=sent" in line:
                            counts[2] += 1
            except FileNotFoundError:
                pass
            counts = tuple(counts)
            if counts == previous:
                return counts
            previous = counts
            time.sleep(0.3)
        return previous

    def delivered(self):
        return self.sink.count() if self.sink is not None else self.log_counts()[2]


def make_certificate(work):
    """A throwaway self-signed RSA-2048 certificate for the MX (most MXs still serve RSA), key readable by root only
    (smtpd loads it as root before it drops privileges)."""
    directory = os.path.join(work, "tls-mx-cert")
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "mx.crt"), os.path.join(directory, "mx.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mx.tls.bench.invalid",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def run_client(bench, b, ns, target, messages, streams):
    """tlsclient.py as the customer user; returns its tally with the client's CPU seconds."""
    cpu0 = b.children_cpu_seconds()
    proc = bench.run(["/usr/bin/python3", "-I", os.path.join(bench.work, "tlsclient.py"), "--server", target,
                      "--count", str(messages), "--streams", str(streams), "--size", str(bench.a.size)],
                     role="bench", timeout=900, check=False, ns=ns)
    cpu = b.children_cpu_seconds() - cpu0
    try:
        tally = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail(b, "tlsclient.py failed (%d): %s %s" % (proc.returncode, proc.stdout[-1000:], proc.stderr[-2000:]))
    tally["cpu_client_s"] = cpu
    return tally


def measured(bench, b, path, mx, messages):
    """One round of a path: the client's run, the MX's and (B_tls) the daemon's CPU, the MX's log counts."""
    a = bench.a
    ns, target = (bench.ns_direct, TLS_MX) if path == "A_tls" else (bench.ns, TLS_MX)
    delivered0, mx_cpu0, log0 = mx.delivered(), mx.cpu_ticks(), mx.log_counts()
    daemon_cpu0 = b.proc_cpu_ticks(bench.daemon.pid) if path == "B_tls" else 0
    tally = run_client(bench, b, ns, target, messages, a.tls_streams)
    daemon_cpu = (b.proc_cpu_ticks(bench.daemon.pid) - daemon_cpu0) / b.TICK if path == "B_tls" else 0.0
    deadline = time.monotonic() + 60
    while mx.delivered() < delivered0 + tally["ok"] and time.monotonic() < deadline:
        time.sleep(0.05)
    got = mx.delivered() - delivered0
    if got != tally["ok"]:
        fail(b, "path %s: the client sent %d messages, the MX delivered %d" % (path, tally["ok"], got))
    log1 = mx.log_counts()
    run = dict(tally, messages=tally["ok"], cpu_daemon_s=daemon_cpu, cpu_mx_s=(mx.cpu_ticks() - mx_cpu0) / b.TICK,
               mx_connections=log1[0] - log0[0], mx_handshakes=log1[1] - log0[1])
    b.log("  %s: %d messages in %.2f s (%.0f msg/s), failures %d, client handshakes %d, MX handshakes %d, MX connections %d" % (
        path, tally["ok"], tally["seconds"], tally["ok"] / tally["seconds"], tally["failures"], tally["handshakes"],
        run["mx_handshakes"], run["mx_connections"]))
    return run


def phase_tls(bench, b):
    """The pair, rounds alternating A_tls, B_tls, on the running (warm) daemon of the main phases."""
    a = bench.a
    b.log("TLS pair: a Postfix STARTTLS MX on %s in each namespace (delivery: %s), %d round(s) of %d messages per path, %d streams" % (
        TLS_MX, a.tls_mx, a.rounds, a.tls_messages, a.tls_streams))
    cert, key = make_certificate(bench.work)
    mxs = {}
    for path, ns in (("A_tls", bench.ns_direct), ("B_tls", bench.ns)):
        mxs[path] = MxInstance(bench, b, ns, path, cert, key, a.tls_mx)
        bench.tls_mxs.append(mxs[path])
        mxs[path].start()
    # Warm-up: Postfix starts its smtpd processes, the daemon's STARTTLS code paths are compiled.
    for path in mxs:
        measured(bench, b, path, mxs[path], a.tls_warmup)
    runs = {"A_tls": [], "B_tls": []}
    for r in range(a.rounds):
        b.log("TLS pair round %d/%d" % (r + 1, a.rounds))
        for path in runs:
            runs[path].append(measured(bench, b, path, mxs[path], a.tls_messages))
    for path, path_runs in runs.items():
        failures = sum(x["failures"] for x in path_runs)
        if failures:
            fail(b, "path %s: %d client failures, first: %s" % (path, failures, path_runs[0]["errors"] or path_runs[-1]["errors"]))
    # A_tls is the TLS case only if the MX offered STARTTLS and the client took it every time.
    if any(x["handshakes"] != x["messages"] for x in runs["A_tls"]):
        fail(b, "path A_tls: the client did not do STARTTLS for every message: %s" % [(x["handshakes"], x["messages"]) for x in runs["A_tls"]])
    bench.results["tls_pair"] = {"runs": runs, "streams": a.tls_streams, "delivery": a.tls_mx}
    for mx in mxs.values():
        mx.stop()


def add_arguments(parser):
    parser.add_argument("--tls-messages", type=int, default=2000, help="messages per round of A_tls and of B_tls (0: skip the pair)")
    parser.add_argument("--tls-streams", type=int, default=8, help="parallel client streams of the TLS pair")
    parser.add_argument("--tls-warmup", type=int, default=300, help="messages per path before the TLS pair's rounds")
    parser.add_argument("--tls-mx", choices=("proxy", "discard"), default="proxy",
                        help="how the TLS pair's MX disposes of mail: smtpd_proxy_filter to an smtp-sink, or discard(8)")


def figures(results):
    """Per path: msg/s, CPU per message (host, MX) in µs, handshakes and connections per message."""
    out = {}
    for path, runs in results["tls_pair"]["runs"].items():
        messages = sum(x["messages"] for x in runs)

        def per_message(key):
            return sum(x[key] for x in runs) / messages

        out[path] = {
            "messages": messages,
            "rate": messages / sum(x["seconds"] for x in runs),
            "client_us": 1e6 * per_message("cpu_client_s"),
            "daemon_us": 1e6 * per_message("cpu_daemon_s"),
            "mx_us": 1e6 * per_message("cpu_mx_s"),
            "client_handshakes": per_message("handshakes"),
            "mx_handshakes": per_message("mx_handshakes"),
            "mx_connections": per_message("mx_connections"),
            "by_round": [x["messages"] / x["seconds"] for x in runs],
        }
        out[path]["host_us"] = out[path]["client_us"] + out[path]["daemon_us"]
    return out


def report_lines(results, width):
    """The pair's lines for the throughput section of the results block."""
    if "tls_pair" not in results:
        return []
    f = figures(results)
    p = results["tls_pair"]
    lines = ["TLS pair: a Postfix MX offering STARTTLS (RSA-2048, delivery %s), tlsclient.py (STARTTLS when offered, unverified), "
             "one message per connection, %d streams" % (p["delivery"], p["streams"])]
    labels = {"A_tls": "A_tls direct to the STARTTLS MX, client does STARTTLS",
              "B_tls": "B_tls through smtp-interceptor (plain hop, upstream STARTTLS reused)"}
    for path in ("A_tls", "B_tls"):
        x = f[path]
        host = "client %4.0f µs" % x["client_us"] + (" + daemon %4.0f µs = %4.0f µs" % (x["daemon_us"], x["host_us"]) if path == "B_tls" else "")
        lines.append("  %-*s %7.0f msg/s  (%d msgs)  CPU/msg: host %s; MX %4.0f µs (not the host's); handshakes/msg: client %.2f, MX %.3f; "
                     "MX connections/msg %.3f; by round: %s msg/s" % (
                         width, labels[path], x["rate"], x["messages"], host, x["mx_us"], x["client_handshakes"], x["mx_handshakes"],
                         x["mx_connections"], " / ".join("%.0f" % r for r in x["by_round"])))
    a_tls, b_tls = f["A_tls"], f["B_tls"]
    lines.append("  B_tls/A_tls = %.2f by throughput, %.2f by the host's CPU per message (A_tls/B_tls µs), %.2f by the MX's" % (
        b_tls["rate"] / a_tls["rate"], a_tls["host_us"] / b_tls["host_us"], a_tls["mx_us"] / b_tls["mx_us"]))
    return lines


def target_rows(results):
    """(name, figure, met) rows of B_tls ≥ A_tls, by throughput and by the host's CPU per message."""
    if "tls_pair" not in results:
        return [(TARGET + " (throughput)", "not measured", False), (TARGET + " (host CPU per message)", "not measured", False)]
    f = figures(results)
    a_tls, b_tls = f["A_tls"], f["B_tls"]
    return [
        (TARGET + " (throughput)", "%.2f (%.0f vs %.0f msg/s)" % (b_tls["rate"] / a_tls["rate"], b_tls["rate"], a_tls["rate"]),
         b_tls["rate"] >= a_tls["rate"]),
        (TARGET + " (host CPU per message)", "%.2f (%.0f vs %.0f µs)" % (a_tls["host_us"] / b_tls["host_us"], b_tls["host_us"], a_tls["host_us"]),
         b_tls["host_us"] <= a_tls["host_us"]),
    ]
