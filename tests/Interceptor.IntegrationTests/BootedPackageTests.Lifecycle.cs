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
    [Order(4)]
    public async Task Watchdog_restarts_a_stopped_daemon_and_port_25_stays_closed_meanwhile()
    {
        await File.WriteAllTextAsync(Path.Combine(Container.RootOnHost, "root", "probe.py"), Probe);
        var old = (await Container.CheckedAsync("systemctl show -p MainPID --value smtp-interceptor")).Trim();
        var gapStart = (await Container.CheckedAsync("date +%s.%N")).Trim();
        var clock = Stopwatch.StartNew();
        await Container.CheckedAsync($"kill -STOP {old}");
        var probes = new List<string>();
        TimeSpan? replaced = null;
        TimeSpan? serving = null;
        var tableDuringGap = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(TestWatchdogSeconds + 60) && serving is null)
        {
            var probe = (await Container.ExecAsync($"runuser -u {Customer} -- python3 /root/probe.py")).Stdout.Trim();
            var pid = (await Container.ExecAsync("systemctl show -p MainPID --value smtp-interceptor")).Stdout.Trim();
            var at = clock.Elapsed;
            probes.Add($"{at.TotalSeconds:F1}s:{probe.Split(' ')[0]}");
            if (pid != old && replaced is null)
            {
                replaced = at;
                tableDuringGap = (await Container.ExecAsync("nft list tables | grep -c 'smtp_interceptor' || true")).Stdout.Trim();
            }

            if (replaced is not null && probe.Contains("smtp-interceptor", StringComparison.Ordinal))
            {
                serving = at;
            }
            else
            {
                Assert.That(probe, Does.Not.StartWith("greeting"), $"a customer got a greeting from something else during the gap: {probe}");
                await Task.Delay(300);
            }
        }

        var gapEnd = (await Container.CheckedAsync("date +%s.%N")).Trim();
        Assert.That(serving, Is.Not.Null, "not restarted within WatchdogSec + 60 s: " + string.Join(" ", probes));
        var leaked = await Container.CheckedAsync(
            $"python3 -c 'import json,sys; print(sum(1 for l in open(\"{MxDirectory}/events.jsonl\") if json.loads(l)[\"kind\"]==\"connect\" and {gapStart} <= json.loads(l)[\"t\"] <= {gapEnd}))'");
        var journal = await Container.CheckedAsync("journalctl -u smtp-interceptor -o cat --no-pager | grep -E 'Watchdog timeout|Killing process|Main process exited|Scheduled restart' | tail -4");
        Assert.Multiple(() =>
        {
            Assert.That(journal, Does.Contain("Watchdog timeout"), "systemd's watchdog did it:\n" + journal);
            Assert.That(leaked.Trim(), Is.EqualTo("0"), "connections reached the fake MX during the gap");
            Assert.That(probes.Any(p => p.EndsWith(":refused", StringComparison.Ordinal) || p.EndsWith(":reset", StringComparison.Ordinal)), Is.True, "refused while the daemon was dead: " + string.Join(" ", probes));
            Assert.That(tableDuringGap, Is.EqualTo("2"), "the table and its guard stay while the daemon is gone");
            Assert.That(replaced!.Value.TotalSeconds, Is.LessThan(TestWatchdogSeconds + 10), "killed and replaced within WatchdogSec (+ RestartSec and a start-up margin)");
        });
        var mail = await Container.ExecAsync($"runuser -u {Customer} -- swaks --server 127.0.0.2:25 --from {Customer}@booted.test --to rcpt@example.test --header 'Subject: booted-after-watchdog' --timeout 20 2>&1", TimeSpan.FromSeconds(60));
        Assert.That(mail.Succeeded, Is.True, "mail flows again after the restart:\n" + mail.Describe());
        Step($"watchdog (WatchdogSec={TestWatchdogSeconds}s): kill -STOP {old} → new main PID after {replaced!.Value.TotalSeconds:F1} s, greeting again after {serving!.Value.TotalSeconds:F1} s; journal: {string.Join(" | ", journal.Split('\n', StringSplitOptions.RemoveEmptyEntries))}");
        Step($"during the gap: probes {string.Join(" ", probes)}; tables present {tableDuringGap}/2; connections reaching the fake MX: {leaked.Trim()}; then swaks relayed again");
    }

    [Test]
    [Order(5)]
    public async Task Nftables_restart_flushes_the_ruleset_and_the_redirect_comes_back_with_the_suspension()
    {
        var uid = (await Container.CheckedAsync($"id -u {Suspended}")).Trim();
        await Container.CheckedAsync($"smtp-interceptor block {Suspended} --reason booted-nftables");
        Assert.That(await SuspendedSetAsync(), Does.Contain(uid), "blocked before the restart");
        var flush = (await Container.CheckedAsync("head -3 /etc/nftables.conf | grep -m1 flush")).Trim();
        var clock = Stopwatch.StartNew();
        await Container.CheckedAsync("systemctl restart nftables");
        var restartTook = clock.Elapsed;
        TimeSpan? redirect = null;
        TimeSpan? suspended = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && suspended is null)
        {
            var chain = await Container.ExecAsync("nft list chain inet smtp_interceptor output_nat 2>/dev/null | grep -c redirect");
            redirect ??= chain.Stdout.Trim() is "" or "0" ? null : clock.Elapsed;
            if ((await SuspendedSetAsync()).Contains(uid, StringComparison.Ordinal))
            {
                suspended = clock.Elapsed;
            }

            await Task.Delay(250);
        }

        Assert.That(redirect, Is.Not.Null, "no redirect after systemctl restart nftables");
        Assert.That(suspended, Is.Not.Null, "the suspended uid was not restored");
        Assert.That(suspended!.Value.TotalSeconds, Is.LessThanOrEqualTo(5 + restartTook.TotalSeconds + 2), "within Interception.VerifyIntervalSeconds (5 s)");
        var probe = (await Container.ExecAsync($"runuser -u {Suspended} -- python3 /root/probe.py")).Stdout.Trim();
        Assert.That(probe, Is.AnyOf("refused", "reset"), "the suspended user's port-25 connection is refused by the kernel");
        var journal = await Container.ExecAsync("journalctl -u smtp-interceptor -o cat --no-pager | grep -iE 'table' | grep -viE 'transaction' | tail -1");
        Step($"systemctl restart nftables ({flush}, took {restartTook.TotalSeconds:F1} s): redirect back after {redirect!.Value.TotalSeconds:F1} s, suspended uid {uid} back after {suspended.Value.TotalSeconds:F1} s; {Suspended}'s probe: {probe}; daemon: {Shorten(journal.Stdout.Trim(), 160)}");
    }

    [Test]
    [Order(6)]
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

        Assert.That(await SuspendedSetAsync(), Does.Contain(uid), "still suspended after the reboot");
        var usageAfter = Usage(await Container.CheckedAsync($"smtp-interceptor limits {Customer}"));
        Assert.That(usageAfter, Is.EqualTo(usageBefore), "the counters survive the reboot");
        var boots = (await Container.CheckedAsync("journalctl --list-boots --no-pager | wc -l")).Trim();
        Step($"after the reboot: uid {uid} still in suspended_uids; {Customer}'s usage unchanged ({usageAfter}); journal boots: {boots}");
    }

    [Test]
    [Order(7)]
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

        // The test's own drop-in is an admin's file, not the package's: removed first, as an admin would.
        var purge = await Container.ExecAsync("rm -rf /etc/systemd/system/smtp-interceptor.service.d && apt-get purge -y smtp-interceptor 2>&1 && systemctl daemon-reload", TimeSpan.FromMinutes(2));
        Assert.That(purge.Succeeded, Is.True, purge.Describe());
        var afterPurge = await Container.CheckedAsync("""
            echo "tables=$(nft list tables | grep -c smtp_interceptor)"
            echo "user=$(getent passwd smtp-interceptor | cut -d: -f1)" "group=$(getent group smtp-interceptor | cut -d: -f1)"
            echo "paths=$(ls -d /var/lib/smtp-interceptor /etc/smtp-interceptor /run/smtp-interceptor /lib/systemd/system/smtp-interceptor* /etc/systemd/system/*/smtp-interceptor* 2>/dev/null | tr '\n' ' ')"
            echo "units=$(systemctl list-unit-files --no-legend 'smtp-interceptor*' | wc -l)"
            echo "dpkg=$(dpkg-query -W -f '${db:Status-Abbrev}' smtp-interceptor 2>/dev/null)"
            """);
        Assert.That(afterPurge, Does.Contain("tables=0").And.Contain("user= group=\n").And.Contain("paths=\n").And.Contain("units=0"), afterPurge);
        var probe = (await Container.ExecAsync($"runuser -u {Customer} -- python3 /root/probe.py")).Stdout.Trim();
        Assert.That(probe, Does.StartWith("greeting").And.Not.Contain("smtp-interceptor"), "port 25 goes straight to the MX again");
        Step($"apt-get purge: {afterPurge.Replace('\n', ' ').Trim()}; {Customer}'s port 25 now reaches the MX directly: {probe}");
    }

    private async Task<string> SuspendedSetAsync() =>
        (await Container.ExecAsync("nft list set inet smtp_interceptor suspended_uids 2>/dev/null | tr -d '\\n'")).Stdout;

    /// <summary>The "used" figures of `smtp-interceptor limits USER` (the limits themselves are configuration).</summary>
    private static string Usage(string limits) =>
        string.Join("; ", limits.Split('\n').Where(l => Regex.IsMatch(l, @"\d+\s*/\s*\d+|used", RegexOptions.IgnoreCase)).Select(l => Regex.Replace(l.Trim(), @"\s+", " ")));
}
