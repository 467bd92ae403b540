using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>Watchdog, nftables restart, reboot, remove and purge, inside the booted container.</summary>
public sealed partial class BootedPackageTests
{
    /// <summary>One connection to 127.0.0.2:25 as the calling user: what came back, in one word (+ the greeting).</summary>
    private const string Probe = """
        import socket, sys
        s = socket.socket()
        s.settimeout(1.5)
        try:
            s.connect(("127.0.0.2", 25))
        except ConnectionRefusedError:
            print("refused"); sys.exit()
        except OSError as e:
            print("error-" + type(e).__name__); sys.exit()
        try:
            data = s.recv(300)
            print("greeting " + data.decode(errors="replace").strip() if data else "closed")
        except socket.timeout:
            print("no-greeting")
        except ConnectionResetError:
            print("reset")
        """;

    [Test]
    [Order(5)]
    public async Task Watchdog_restarts_a_stopped_daemon_and_port_25_stays_closed_meanwhile()
    {
        var old = (await Container.CheckedAsync("systemctl show -p MainPID --value smtp-interceptor")).Trim();
        var gapStart = (await Container.CheckedAsync("date +%s.%N")).Trim();
        var clock = Stopwatch.StartNew();
        await Container.CheckedAsync($"kill -STOP {old}");
        var probes = new List<string>();
        TimeSpan? killed = null;
        TimeSpan? restarted = null;
        TimeSpan? serving = null;
        var restartedAt = "";
        var tables = new HashSet<string>();

        // One round per iteration (nsenter costs): container time, main PID, our tables, a customer's probe.
        var round = $"echo \"$(date +%s.%N) $(systemctl show -p MainPID --value smtp-interceptor) $(nft list tables | grep -c smtp_interceptor) $(runuser -u {Customer} -- python3 {Scripts}/probe.py)\"";
        while (clock.Elapsed < TimeSpan.FromSeconds(TestWatchdogSeconds + 60) && serving is null)
        {
            var fields = (await Container.CheckedAsync(round)).Trim().Split(' ', 4);
            var (now, pid, tableCount, probe) = (fields[0], fields[1], fields[2], fields[3]);
            var at = clock.Elapsed;
            probes.Add($"{at.TotalSeconds:F1}s:{probe.Split(' ')[0]}");
            Assert.That(probe, Does.Not.Contain("fake-mx"), "a customer reached the MX directly during the gap");
            killed ??= pid != old ? at : null;
            if (pid != old && pid != "0" && restarted is null)
            {
                (restarted, restartedAt) = (at, now);
            }

            if (restarted is null)
            {
                tables.Add(tableCount);
            }

            if (restarted is not null && probe.Contains(DaemonGreeting, StringComparison.Ordinal))
            {
                serving = at;
            }
            else
            {
                await Task.Delay(300);
            }
        }

        Assert.That(serving, Is.Not.Null, "not restarted within WatchdogSec + 60 s: " + string.Join(" ", probes));

        // Connections the fake MX saw between the SIGSTOP and the new daemon's start: none may get through.
        var leaked = await Container.CheckedAsync(
            $"python3 -c 'import json,sys; print(sum(1 for l in open(\"{MxDirectory}/events.jsonl\") if json.loads(l)[\"kind\"]==\"connect\" and {gapStart} <= json.loads(l)[\"t\"] <= {restartedAt}))'");
        var journal = await Container.CheckedAsync("journalctl -u smtp-interceptor -o cat --no-pager | grep -E 'Watchdog timeout|Main process exited|Failed with result|Scheduled restart' | tail -4");
        Assert.Multiple(() =>
        {
            Assert.That(journal, Does.Contain("Watchdog timeout"), "systemd's watchdog did it:\n" + journal);
            Assert.That(leaked.Trim(), Is.EqualTo("0"), "connections reached the fake MX between the SIGSTOP and the restart");
            Assert.That(probes.Any(p => p.EndsWith(":refused", StringComparison.Ordinal) || p.EndsWith(":reset", StringComparison.Ordinal)), Is.True, "refused while the daemon was dead: " + string.Join(" ", probes));
            Assert.That(tables, Is.EquivalentTo(new[] { "2" }), "the table and its guard stay while the daemon is gone");
            Assert.That(killed!.Value.TotalSeconds, Is.LessThan(TestWatchdogSeconds + 5), "killed within WatchdogSec (+ the probe's granularity)");
            Assert.That(restarted!.Value.TotalSeconds, Is.LessThan(TestWatchdogSeconds + 15), "restarted after RestartSec=2s and the start-up");
        });
        var mail = await Container.ExecAsync($"runuser -u {Customer} -- swaks --server 127.0.0.2:25 --from {Customer}@booted.test --to rcpt@example.test --header 'Subject: booted-after-watchdog' --timeout 20 2>&1", TimeSpan.FromSeconds(60));
        Assert.That(mail.Succeeded, Is.True, "mail flows again after the restart:\n" + mail.Describe());
        Step($"watchdog (drop-in WatchdogSec={TestWatchdogSeconds}s): kill -STOP {old} → killed after {killed!.Value.TotalSeconds:F1} s, new main PID after {restarted!.Value.TotalSeconds:F1} s, greeting again after {serving!.Value.TotalSeconds:F1} s; journal: {string.Join(" | ", journal.Split('\n', StringSplitOptions.RemoveEmptyEntries))}");
        Step($"during the gap: probes {string.Join(" ", probes)} (no-greeting: queued in the stopped daemon's backlog; refused: daemon dead, table kept); tables present {string.Join(",", tables)}/2; connections reaching the fake MX: {leaked.Trim()}; then swaks relayed again");
    }

    [Test]
    [Order(6)]
    public async Task Nftables_restart_flushes_the_ruleset_and_the_redirect_comes_back_with_the_suspension()
    {
        var uid = (await Container.CheckedAsync($"id -u {Suspended}")).Trim();
        await Container.CheckedAsync($"smtp-interceptor block {Suspended} --reason booted-nftables");
        Assert.That(await SuspendedSetAsync(), Does.Contain(uid), "blocked before the restart");
        var flush = (await Container.CheckedAsync("head -3 /etc/nftables.conf | grep -m1 flush")).Trim();
        const string RulesEntered = "systemctl show -p ActiveEnterTimestampMonotonic --value smtp-interceptor-rules";
        var rulesBefore = (await Container.CheckedAsync(RulesEntered)).Trim();
        var clock = Stopwatch.StartNew();
        await Container.CheckedAsync("systemctl restart nftables");
        var restartTook = clock.Elapsed;

        // The flush removes our table with everything else. The daemon hears it from the kernel and restores its complete
        // table at once; PartOf= restarts smtp-interceptor-rules.service, which loads the table as configured (no suspended
        // uids, replacing the daemon's), and the daemon hears that too and restores its own again. Between a flush and the
        // daemon's restoration nothing redirects or refuses port 25: that window is measured and printed.
        // Once the rules unit has run, the suspended user must never reach the MX again.
        TimeSpan? rulesDone = null;
        TimeSpan? restored = null;
        var probes = new List<string>();
        var round = $"echo \"$(systemctl is-active smtp-interceptor-rules) $({RulesEntered}) $(nft list chain inet smtp_interceptor output_nat 2>/dev/null | grep -c 'redirect to') $(nft list set inet smtp_interceptor suspended_uids 2>/dev/null | grep -c 'elements = .*\\b{uid}\\b') $(runuser -u {Suspended} -- python3 {Scripts}/probe.py)\"";
        while (clock.Elapsed < TimeSpan.FromSeconds(40) && restored is null)
        {
            var fields = (await Container.CheckedAsync(round)).Trim().Split(' ', 5);
            var (rules, entered, redirects, suspendedNow, probe) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
            var at = clock.Elapsed;
            var wasDone = rulesDone is not null;
            rulesDone ??= rules == "active" && entered != rulesBefore ? at : null;
            probes.Add($"{at.TotalSeconds:F1}s:{Shorten(probe, 16)}{(rulesDone is null ? "(rules unit not yet run)" : "")}");
            Assert.That(wasDone && probe.Contains("fake-mx", StringComparison.Ordinal), Is.False, "the suspended user reached the MX after the rules unit had run: " + string.Join(" ", probes));
            if (rulesDone is not null && redirects != "0" && suspendedNow != "0")
            {
                restored = at;
            }

            await Task.Delay(250);
        }

        Assert.That(restored, Is.Not.Null, "redirect and suspension not back after systemctl restart nftables: " + string.Join(" ", probes));
        Assert.That((restored!.Value - rulesDone!.Value).TotalSeconds, Is.LessThanOrEqualTo(5 + 3), "restored within Interception.VerifyIntervalSeconds (5 s) of the rules unit's reload, at the latest");
        var probeAfter = (await Container.ExecAsync($"runuser -u {Suspended} -- python3 {Scripts}/probe.py")).Stdout.Trim();
        Assert.That(probeAfter, Is.AnyOf("refused", "reset"), "the suspended user's port-25 connection is refused by the kernel again");

        // The open windows from the journal: each flush (nftables' stop, then its start's nftables.conf) removes our tables
        // until the daemon, told by the kernel, restores them. From the restart's first line (before the first flush) to
        // the daemon's first restoration is an upper bound on the first window.
        var journal = await Container.CheckedAsync("""
            journalctl -o short-monotonic --no-pager -n 600 -u nftables -u smtp-interceptor-rules -u smtp-interceptor \
              | grep -E '(Stopping|Starting|Finished|Stopped) (nftables|smtp-interceptor-rules)\.service|table inet smtp_interceptor restored' \
              | sed -E 's/^\[ *([0-9.]+)\].*(Stopping|Starting|Finished|Stopped) (nftables|smtp-interceptor-rules)\.service.*/\1 \2-\3/; s/^\[ *([0-9.]+)\].*table inet smtp_interceptor restored.*/\1 restored/'
            """);
        var events = journal.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', 2))
            .Select(f => (At: double.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture), What: f[1]))
            .ToList();
        // systemd does not log the oneshot's stop itself, only the stop it propagates to the rules unit (PartOf=), just
        // before: the restart's first line is that, or `Starting nftables.service`.
        var stopping = events.FindLastIndex(e => e.What == "Starting-nftables");
        Assert.That(stopping, Is.GreaterThanOrEqualTo(0), "no `Starting nftables.service` in the journal:\n" + journal);
        while (stopping > 0 && events[stopping - 1].What.StartsWith("Stop", StringComparison.Ordinal))
        {
            stopping--;
        }

        var since = events.Skip(stopping).ToList();
        var firstRestore = since.FindIndex(e => e.What == "restored");
        var timeline = string.Join(", ", since.Select(e => $"+{e.At - since[0].At:F2} {e.What}"));
        Step($"systemctl restart nftables ({flush}; restart {restartTook.TotalSeconds:F1} s): rules unit re-run at {rulesDone.Value.TotalSeconds:F1} s, redirect + suspended uid {uid} at {restored.Value.TotalSeconds:F1} s; {Suspended}'s probes: {string.Join(" ", probes)} → then {probeAfter}");
        Step($"journal from the stop: {timeline}");
        Assert.That(firstRestore, Is.GreaterThan(0), "the daemon did not restore its tables after the flush:\n" + journal);
        var open = since[firstRestore].At - since[0].At;
        Step($"port 25 open to every user from the first flush to the daemon's restoration: at most {open:F2} s (journal: the restart's first line → `table inet smtp_interceptor restored`)");
        Assert.That(open, Is.LessThan(2), "the daemon hears the flush and restores its tables at once, before the rules unit would (its .NET start-up alone is 0.7–2 s)");
    }

    [Test]
    [Order(7)]
    public async Task Reboot_puts_the_redirect_before_network_pre_and_keeps_suspensions_and_counters()
    {
        var uid = (await Container.CheckedAsync($"id -u {Suspended}")).Trim();
        var usageBefore = Usage(await Container.CheckedAsync($"smtp-interceptor limits {Customer}"));
        Assert.That(await SuspendedSetAsync(), Does.Contain(uid), "the previous step left the user suspended");
        await Container.PowerOffAsync(TimeSpan.FromSeconds(90));
        var clock = Stopwatch.StartNew();
        var state = await Container.BootAsync(TimeSpan.FromMinutes(3));
        Step($"rebooted (poweroff, boot from the same root): is-system-running = {state} after {clock.Elapsed.TotalSeconds:F1} s");
        await StartFakeMxAsync();

        var order = (await Container.CheckedAsync(
            "journalctl -b -o short-monotonic --no-pager | grep -E 'smtp-interceptor-rules.service|Reached target network-pre.target|Started smtp-interceptor.service'")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var rules = Array.FindIndex(order, l => l.Contains("Finished smtp-interceptor-rules.service", StringComparison.Ordinal));
        var networkPre = Array.FindIndex(order, l => l.Contains("Reached target network-pre.target", StringComparison.Ordinal));
        var daemon = Array.FindIndex(order, l => l.Contains("Started smtp-interceptor.service", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(rules, Is.GreaterThanOrEqualTo(0), string.Join("\n", order));
            Assert.That(networkPre, Is.GreaterThan(rules), "network-pre.target after the rules unit:\n" + string.Join("\n", order));
            Assert.That(daemon, Is.GreaterThan(rules), "the daemon after the rules unit:\n" + string.Join("\n", order));
        });
        Step("boot order (journal, monotonic): " + string.Join(" | ", new[] { rules, networkPre, daemon }.Select(i => Shorten(Regex.Replace(order[i], @"\s+\S+ systemd\[1\]:", ""), 80))));
        // The first try gets the table in and leaves its mark, so the second does nothing; about one boot in 30 here the
        // sandbox's namespace set-up fails it (226/NAMESPACE, the reason for the second try, tested on purpose in the
        // next step). Then the journal must say so: a first try that failed for any other reason is a fault.
        var mark = (await Container.ExecAsync("test -e /run/smtp-interceptor-rules/applied && echo marked")).Stdout.Trim();
        if (mark != "marked")
        {
            var journal = (await Container.ExecAsync("journalctl -b -u smtp-interceptor-rules --no-pager -o cat")).Stdout;
            Assert.That(journal, Does.Contain("NAMESPACE").Or.Contain("226"), "no mark, and the first try did not fail at the namespace set-up:\n" + journal);
            Step("this boot's first try of the rules unit failed at the namespace set-up (226), as now and then; the second got the table in");
        }

        Assert.That(await SuspendedSetAsync(), Does.Contain(uid), "still suspended after the reboot");
        var usageAfter = Usage(await Container.CheckedAsync($"smtp-interceptor limits {Customer}"));
        Assert.That(usageAfter, Is.EqualTo(usageBefore), "the counters survive the reboot");
        var boots = (await Container.CheckedAsync("journalctl --list-boots --no-pager | wc -l")).Trim();
        Step($"after the reboot: uid {uid} still in suspended_uids; {Customer}'s usage unchanged ({usageAfter}); journal boots: {boots}");
    }

    [Test]
    [Order(8)]
    public async Task A_rules_unit_whose_first_try_fails_at_boot_gets_the_table_in_before_network_pre()
    {
        // systemd's namespace set-up for the unit's sandbox failed at boot now and then (226/NAMESPACE, about 1 in 30
        // reboots here), and port 25 then stayed open until the daemon started. The unit's first try may fail: here it
        // exits 226 on purpose, and the package's own second command must get the table in within the same start job.
        const string dropIn = "/etc/systemd/system/smtp-interceptor-rules.service.d";
        var tries = (await Container.CheckedAsync("sed -n 's/^ExecStart=//p' /lib/systemd/system/smtp-interceptor-rules.service")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(tries, Has.Length.EqualTo(2), "the package's unit tries twice in one start job");
        Assert.Multiple(() =>
        {
            Assert.That(tries[0], Does.StartWith("-/bin/bash ").And.EndWith("&& : > /run/smtp-interceptor-rules/applied'"), "the first try's failure is not final, and it leaves a mark when it got the table in");
            Assert.That(tries[1], Does.StartWith("/bin/bash -c 'set -o pipefail; test -e /run/smtp-interceptor-rules/applied && exit 0; "), "the second applies only without that mark");
        });

        // The package's first try replaced by one that fails as the namespace set-up did (226), its second kept as it is.
        await Container.CheckedAsync($$"""
            mkdir -p {{dropIn}}
            second="$(sed -n 's/^ExecStart=//p' /lib/systemd/system/smtp-interceptor-rules.service | tail -1)"
            { printf '[Service]\nExecStart=\nExecStart=-/bin/sh -c "echo failing the first try on purpose; exit 226"\n'; printf 'ExecStart=%s\n' "$second"; } > {{dropIn}}/fail-first.conf
            systemctl daemon-reload
            """);
        try
        {
            await Container.PowerOffAsync(TimeSpan.FromSeconds(90));
            var state = await Container.BootAsync(TimeSpan.FromMinutes(3));
            await StartFakeMxAsync();
            var order = (await Container.CheckedAsync(
                "journalctl -b -o short-monotonic --no-pager | grep -E 'smtp-interceptor-rules|Reached target network-pre.target|Started smtp-interceptor.service'")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var context = $"state {state}:\n" + string.Join("\n", order);
            // The namespace set-up itself may fail first (226 before our command runs): a failed first try all the same.
            var failed = Array.FindIndex(order, l => l.Contains("failing the first try on purpose", StringComparison.Ordinal)
                || l.Contains("smtp-interceptor-rules.service: Failed at step NAMESPACE", StringComparison.Ordinal));
            var rules = Array.FindIndex(order, l => l.Contains("Finished smtp-interceptor-rules.service", StringComparison.Ordinal));
            var networkPre = Array.FindIndex(order, l => l.Contains("Reached target network-pre.target", StringComparison.Ordinal));
            var daemon = Array.FindIndex(order, l => l.Contains("Started smtp-interceptor.service", StringComparison.Ordinal));
            Assert.Multiple(() =>
            {
                Assert.That(failed, Is.GreaterThanOrEqualTo(0), "the first try failed" + context);
                Assert.That(rules, Is.GreaterThan(failed), "the second try finished" + context);
                Assert.That(networkPre, Is.GreaterThan(rules), "network-pre.target waited for it" + context);
                Assert.That(daemon, Is.GreaterThan(rules), context);
                Assert.That(state, Is.EqualTo("running"), "nothing failed for good" + context);
            });
            Step("rules unit whose first try fails at boot: " + string.Join(" | ", new[] { failed, rules, networkPre }.Select(i => Shorten(Regex.Replace(order[i], @"\s+\S+ (systemd\[1\]|\S+\[\d+\]):", ""), 70))));
        }
        finally
        {
            await Container.ExecAsync($"rm -rf {dropIn} && systemctl daemon-reload");
        }
    }

    [Test]
    [Order(11)]
    public async Task Remove_then_purge_leave_no_table_user_state_or_unit()
    {
        var remove = await Container.ExecAsync("apt-get remove -y smtp-interceptor 2>&1", TimeSpan.FromMinutes(2));
        Assert.That(remove.Succeeded, Is.True, remove.Describe());
        var afterRemove = await Container.CheckedAsync("""
            echo "tables=$(nft list tables | grep -c smtp_interceptor)"
            echo "active=$(systemctl is-active smtp-interceptor)"
            echo "user=$(getent passwd smtp-interceptor | cut -d: -f1)"
            echo "state=$(test -d /var/lib/smtp-interceptor && echo kept)"
            echo "config=$(test -f /etc/smtp-interceptor/smtp-interceptor.json && echo kept)"
            """);
        Assert.That(afterRemove, Does.Contain("tables=0").And.Contain("active=inactive").And.Contain("user=smtp-interceptor").And.Contain("state=kept").And.Contain("config=kept"), afterRemove);
        Step($"apt-get remove: {afterRemove.Replace('\n', ' ').Trim()}");

        // The test's own drop-in and metrics token are an admin's files, not the package's: removed first, as an admin would.
        var purge = await Container.ExecAsync("rm -rf /etc/systemd/system/smtp-interceptor.service.d /etc/smtp-interceptor/metrics-token && apt-get purge -y smtp-interceptor 2>&1 && systemctl daemon-reload", TimeSpan.FromMinutes(2));
        Assert.That(purge.Succeeded, Is.True, purge.Describe());
        var afterPurge = await Container.CheckedAsync("""
            echo "tables=$(nft list tables | grep -c smtp_interceptor)"
            echo "user=$(getent passwd smtp-interceptor | cut -d: -f1)" "group=$(getent group smtp-interceptor | cut -d: -f1)"
            echo "paths=$(ls -d /var/lib/smtp-interceptor /etc/smtp-interceptor /run/smtp-interceptor /lib/systemd/system/smtp-interceptor* /etc/systemd/system/*/smtp-interceptor* 2>/dev/null | tr '\n' ' ')"
            echo "units=$(systemctl list-unit-files --no-legend 'smtp-interceptor*' | wc -l)"
            echo "dpkg=$(dpkg-query -W -f '${db:Status-Abbrev}' smtp-interceptor 2>/dev/null)"
            """);
        Assert.That(afterPurge, Does.Contain("tables=0").And.Contain("user= group=\n").And.Contain("paths=\n").And.Contain("units=0"), afterPurge);
        var probe = (await Container.ExecAsync($"runuser -u {Customer} -- python3 {Scripts}/probe.py")).Stdout.Trim();
        Assert.That(probe, Does.StartWith("greeting").And.Not.Contain("smtp-interceptor"), "port 25 goes straight to the MX again");
        Step($"apt-get purge: {afterPurge.Replace('\n', ' ').Trim()}; {Customer}'s port 25 now reaches the MX directly: {probe}");
    }

    private async Task<string> SuspendedSetAsync() =>
        (await Container.ExecAsync("nft list set inet smtp_interceptor suspended_uids 2>/dev/null | tr -d '\\n'")).Stdout;

    /// <summary>The USED column of the hourly and daily rows of `smtp-interceptor limits USER`.</summary>
    private static string Usage(string limits)
    {
        var rows = Regex.Matches(limits, @"^((?:messages|recipients) per (?:hour|day))\s+\d+\s+(\d+)\s*$", RegexOptions.Multiline);
        Assert.That(rows, Has.Count.EqualTo(4), "hourly and daily rows in:\n" + limits);
        return string.Join(", ", rows.Select(m => $"{m.Groups[1].Value} {m.Groups[2].Value}"));
    }
}
