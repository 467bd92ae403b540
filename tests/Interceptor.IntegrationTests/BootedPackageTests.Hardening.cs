using System.Globalization;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>The system-call filter and the sandbox under real work, and the security score, inside the container.</summary>
public sealed partial class BootedPackageTests
{
    private const int LoadMessages = 300;

    /// <summary>Sends N messages as the calling user over a few parallel connections (smtplib, one connection per thread).</summary>
    private const string LoadSender = """
        import smtplib, sys, threading
        total, threads = int(sys.argv[1]), int(sys.argv[2])
        failures = []
        def run(count):
            try:
                with smtplib.SMTP("127.0.0.2", 25, timeout=60) as s:
                    for i in range(count):
                        s.sendmail("load@booted.test", ["rcpt@example.test"], "Subject: booted-load\r\n\r\nbody %d\r\n" % i)
            except Exception as e:
                failures.append(repr(e))
        workers = [threading.Thread(target=run, args=(total // threads,)) for _ in range(threads)]
        for w in workers: w.start()
        for w in workers: w.join()
        print(f"sent {total} in {threads} connections, failures: {failures}")
        sys.exit(1 if failures else 0)
        """;

    [Test]
    [Order(3)]
    public async Task Sandbox_and_system_call_filter_hold_under_load_and_every_admin_verb()
    {
        var before = await ServiceStateAsync();
        var mxBefore = await MxAcceptedAsync();
        var load = await Container.ExecAsync($"runuser -u {Customer} -- python3 {Scripts}/load.py {LoadMessages} 6 2>&1", TimeSpan.FromMinutes(3));
        Assert.That(load.Succeeded, Is.True, load.Describe());
        var relayed = await MxAcceptedAsync() - mxBefore;
        Assert.That(relayed, Is.EqualTo(LoadMessages), "every load message reaches the fake MX");

        string[] verbs = ["status", "users", $"log --user {Customer} --limit 3", $"block {Suspended} --reason booted-test", "limits", $"limits {Customer}", $"unblock {Suspended}", "status --json"];
        var outcomes = new List<string>();
        foreach (var verb in verbs)
        {
            var run = await Container.ExecAsync($"smtp-interceptor {verb}");
            Assert.That(run.Succeeded, Is.True, $"smtp-interceptor {verb}:\n" + run.Describe());
            outcomes.Add($"{verb.Split(' ')[0]}=0");
        }

        var after = await ServiceStateAsync();
        var kills = await Container.ExecAsync("journalctl -b -u smtp-interceptor --no-pager -o cat | grep -Ei 'SIGSYS|Bad system call|code=killed|code=dumped|status=31|Operation not permitted|EPERM' || true");

        // The unit's LimitNICE=+0 lets the daemon (User=, no CAP_SYS_NICE, the syscall filter) set a pump thread back to
        // nice 0, so it demotes a flood's relaying: event 204 at start. systemd can set that limit only with
        // CAP_SYS_RESOURCE, which a container's PID 1 may lack (this test machine's root does): then the daemon runs with
        // RLIMIT_NICE 0 and must say so, event 205. Whichever it is, it must match the limit the daemon really has.
        var niceLimit = int.Parse((await Container.CheckedAsync("awk '/Max nice priority/ {print $4}' /proc/$(systemctl show -p MainPID --value smtp-interceptor)/limits")).Trim(), CultureInfo.InvariantCulture);
        var expectedEvent = niceLimit >= 20 ? "\"EventId\":204," : "\"EventId\":205,";
        var demotion = await Container.ExecAsync("journalctl -b -u smtp-interceptor --no-pager -o cat | grep -Eo '\"EventId\":20[45],' | sort -u");
        Step($"RLIMIT_NICE of the running daemon {niceLimit} (LimitNICE=+0 asks 20): journal has {demotion.Stdout.Trim()} ({(niceLimit >= 20 ? "flooding users demoted" : "no demotion: systemd could not raise the limit here")})");
        // Under the unit's system-call filter and RestrictRealtime=, the store's writer still makes itself SCHED_BATCH
        // (Core's HelperThreads), and no other thread is batch after the load (a thread that inherited it would be).
        // Read here: a refusal leaves only event 206.
        var policies = await Container.CheckedAsync(
            "pid=$(systemctl show -p MainPID --value smtp-interceptor); for t in /proc/$pid/task/*; do echo \"$(cat $t/comm): $(chrt -p ${t##*/} | head -1 | sed 's/.*: //')\"; done");
        var writerPolicy = string.Join(" ", policies.Split('\n').Where(line => line.StartsWith("state-store-wri:", StringComparison.Ordinal)));
        var otherBatch = policies.Split('\n').Where(line => line.Contains("SCHED_BATCH", StringComparison.Ordinal)
            && !line.StartsWith("state-store-wri:", StringComparison.Ordinal)).ToList();
        Step($"the store's writer thread under the unit: {writerPolicy}; other batch threads: {otherBatch.Count}");

        // Floods among others are paced by the unit's own CPU pressure (its cgroup's cpu.pressure), which a customer's
        // nice 19 or SCHED_IDLE busy loops do not move, not by the machine's (FloodPacing, event 207).
        var group = (await Container.CheckedAsync("sed -n 's/^0:://p' /proc/$(systemctl show -p MainPID --value smtp-interceptor)/cgroup")).Trim();
        var pacing = (await Container.ExecAsync("journalctl -b -u smtp-interceptor --no-pager -o cat | grep '\"EventId\":207,' | tail -1")).Stdout.Trim();
        Step($"the daemon's cgroup {group}; pacing: {Shorten(pacing, 220)}");
        Assert.Multiple(() =>
        {
            Assert.That(group, Does.StartWith("/system.slice/smtp-interceptor.service"), "the unit's own cgroup");
            // The v2 hierarchy's mount point depends on the host (/sys/fs/cgroup, or .../unified where it is hybrid).
            Assert.That(pacing, Does.Match($@"""Path"":""/sys/fs/cgroup(/unified)?{group}/cpu\.pressure"""), "the unit's CPU pressure paces floods, not the machine's");
            Assert.That(writerPolicy, Does.Contain("SCHED_BATCH"), "the store's writer yields on waking under the unit's sandbox:\n" + policies);
            Assert.That(otherBatch, Is.Empty, "no thread but the helpers is batch:\n" + policies);
            Assert.That(demotion.Stdout.Trim(), Is.EqualTo(expectedEvent), "the daemon's demotion matches the nice limit it runs with");
            Assert.That(after, Is.EqualTo(before), "same main PID, no restart, still active/running");
            Assert.That(after, Does.Contain("NRestarts=0").And.Contain("ActiveState=active"));
            Assert.That(kills.Stdout.Trim(), Is.Empty, "no seccomp kill or EPERM in the journal");
        });
        Step($"{LoadMessages} messages as {Customer} (6 connections) all relayed; admin verbs {string.Join(" ", outcomes)}; service unchanged ({after.Replace('\n', ' ').Trim()}); journal: no SIGSYS/EPERM/killed");

        var online = await Container.CheckedAsync("systemd-analyze security --no-pager smtp-interceptor.service 2>&1 | tail -1");
        var offline = await Container.CheckedAsync("systemd-analyze security --offline=yes --no-pager /lib/systemd/system/smtp-interceptor.service 2>&1 | tail -1");
        var onlineScore = Score(online);
        Assert.That(onlineScore, Is.EqualTo(Score(offline)), $"online: {online}\noffline: {offline}");
        Assert.That(double.Parse(onlineScore, CultureInfo.InvariantCulture), Is.LessThanOrEqualTo(2.5));
        Step($"systemd-analyze security smtp-interceptor (running unit): {online.Trim()} = offline check of the shipped file: {offline.Trim()}");
    }

    [Test]
    [Order(4)]
    public async Task Journal_priority_shows_exactly_the_daemons_warnings_and_errors()
    {
        // The daemon's own lines (not systemd's about the unit): everything it logged, and what -p warning keeps.
        var all = await Container.CheckedAsync("journalctl -b SYSLOG_IDENTIFIER=smtp-interceptor -o cat --no-pager");
        var warnings = await Container.CheckedAsync("journalctl -b SYSLOG_IDENTIFIER=smtp-interceptor -p warning -o cat --no-pager");
        static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var expected = Lines(all).Where(l => Regex.IsMatch(l, "\"LogLevel\":\"(Warning|Error|Critical)\"")).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(expected, Is.Not.Empty, "the block and unblock of the previous step log warnings");
            Assert.That(Lines(warnings), Is.EqualTo(expected), "journalctl -p warning = the JSON lines at Warning or above");
            Assert.That(Lines(all), Has.All.StartWith("{\""), "journald stripped the <N> prefix: the stored line is the JSON object");
        });
        var info = (await Container.CheckedAsync("journalctl -b SYSLOG_IDENTIFIER=smtp-interceptor -p info -o cat --no-pager | grep -c '\"LogLevel\":\"Information\"' || true")).Trim();
        Step($"journalctl -u smtp-interceptor -p warning: {expected.Length} lines, exactly the daemon's Warning/Error lines (of {Lines(all).Length}; {info} Information lines only under -p info), e.g. {Shorten(expected[0], 150)}");
    }

    private async Task<string> ServiceStateAsync() =>
        (await Container.CheckedAsync("systemctl show -p MainPID -p NRestarts -p ActiveState -p SubState smtp-interceptor")).Trim();

    private async Task<int> MxAcceptedAsync() =>
        int.Parse((await Container.CheckedAsync($"ls {MxDirectory} | grep -c '\\.json$' || true")).Trim(), CultureInfo.InvariantCulture);

    private static string Score(string line)
    {
        var match = Regex.Match(line, @"exposure level for \S+: ([0-9.]+)");
        Assert.That(match.Success, Is.True, "no exposure level in: " + line);
        return match.Groups[1].Value;
    }
}
