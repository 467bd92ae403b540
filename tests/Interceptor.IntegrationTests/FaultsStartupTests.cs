using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 4, faults at the edges of the daemon: nft missing or failing when it starts (case 15), and an upstream that
/// swallows SYNs (case 12, connect timeout). Each in its own namespace; nothing here touches the host: the nft fakes
/// live on a tmpfs in a private mount namespace of the daemon's process only.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class FaultsStartupTests
{
    private const string Table = NftTable.Name;

    [TestCase("missing")]
    [TestCase("failing")]
    public async Task Nft_missing_or_failing_at_start_makes_the_daemon_refuse_to_start_with_exit_3_and_what_to_fix(string fault)
    {
        await using var ns = await NetworkNamespace.CreateAsync();
        using var dir = new TestDirectory();
        var config = DaemonProcess.WriteConfig(dir, new DaemonConfig());
        var emptyPath = dir.Subdirectory("empty-path");
        // In a private mount namespace of this one process: an empty tmpfs over /usr/sbin (and so /sbin, its symlink),
        // holding nothing ("missing") or an nft that fails as it does without CAP_NET_ADMIN ("failing").
        var fake = fault == "failing"
            ? "printf '#!/bin/sh\\necho \"Error: Could not process rule: Operation not permitted\" >&2\\nexit 1\\n' > /usr/sbin/nft && chmod 755 /usr/sbin/nft || exit 91\n"
            : "";
        var script =
            "mount -t tmpfs -o size=1m smtpi-no-nft /usr/sbin || exit 90\n" + fake +
            "PATH=\"$1\" exec \"$2\" \"$3\" run --config \"$4\"\n";

        var run = await ns.RunAsync(
            "unshare",
            ["--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", emptyPath, DaemonProcess.DotnetHost, DaemonProcess.AssemblyPath, config],
            TimeSpan.FromSeconds(60));
        var tables = await ns.RunAsync("nft", ["list", "tables"]);

        var context = "\n" + run.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(run.ExitCode, Is.EqualTo(3), "exit code 3: the system refused" + context);
            if (fault == "missing")
            {
                Assert.That(run.Stderr, Does.Contain("'nft' program was not found").And.Contain("apt-get install nftables"), "names what to install" + context);
            }
            else
            {
                Assert.That(run.Stderr, Does.Contain("Operation not permitted").And.Contain("Hint:").And.Contain("CAP_NET_ADMIN"), "quotes nft and says what to fix" + context);
            }

            Assert.That(tables.Stdout, Does.Not.Contain(Table), "nothing was installed\n" + tables.Describe());
            Assert.That(File.Exists("/usr/sbin/nft"), Is.True, "the host's /usr/sbin/nft is untouched");
        });
    }

    [Test]
    public async Task An_upstream_that_swallows_SYNs_gives_421_within_the_connect_timeout()
    {
        const int connectTimeout = 2;
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { ConnectTimeoutSeconds = connectTimeout }, startMx: false);
        // 198.51.100.7 (TEST-NET-2) gets a route (with a source address, or connect() would use 0.0.0.0), and a test
        // table of our own drops its SYNs: it never answers. Alice's connection is redirected at the nat hook first,
        // so only the daemon's upstream connect is dropped.
        await ProcessRunner.RunCheckedAsync("ip", "-n", s.Ns.Name, "addr", "add", "198.51.100.1/32", "dev", "lo");
        await ProcessRunner.RunCheckedAsync("ip", "-n", s.Ns.Name, "route", "add", "198.51.100.0/24", "dev", "lo", "src", "198.51.100.1");
        var blackhole = await s.Ns.RunAsync("nft", ["-f", s.Dir.Write("blackhole.nft",
            "table inet smtpi_test_blackhole {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    ip daddr 198.51.100.7 tcp dport 25 drop\n  }\n}\n")]);
        Assert.That(blackhole.Succeeded, Is.True, blackhole.Describe());

        var result = await new HostileDialog("198.51.100.7:25", timeoutSeconds: 20).ReadAll("AFTER").RunAsync(s.Ns, TestUsers.Alice, s.Dir);

        var greeting = result.Reply("GREETING");
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"greeting after {greeting?.AtSeconds:F2} s: {greeting?.Raw.TrimEnd()}"));
        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(greeting?.Raw, Does.StartWith("421 4.4.1 ").And.Contain("198.51.100.7"), context);
            Assert.That(greeting?.AtSeconds, Is.InRange(connectTimeout - 0.5, connectTimeout + 3), "after Relay.ConnectTimeoutSeconds" + context);
            Assert.That(HostileDialog.EndsClosed(result), Is.True, "then closed" + context);
        });
    }
}
