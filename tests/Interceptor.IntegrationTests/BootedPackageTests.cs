using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The package under a real systemd: a minimal Debian 12 root (built once with mmdebstrap, cached by its package
/// list) booted with systemd as PID 1 under systemd-nspawn with a private network; the .deb from
/// packaging/build-deb installed in it with apt; then each claim the packaging README makes about the units is
/// checked inside the booted container and printed as one "booted:" line with its evidence. The tests run in
/// order on one container (install → mail → load → watchdog → nftables restart → reboot → remove/purge).
/// Only the test's own copy of the root is touched (an overlay); nothing leaves the container's network.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed partial class BootedPackageTests
{
    private const string Config = "/etc/smtp-interceptor/smtp-interceptor.json";
    private const string Customer = "customer";
    private const string Suspended = "customer2";
    private const string MxDirectory = "/var/tmp/mx";

    /// <summary>The test's python scripts inside the container, readable by the customers (/root is not).</summary>
    private const string Scripts = "/opt/booted-test";

    /// <summary>The container's host name (Fixtures/booted_root.sh): the daemon greets with it, the fake MX with "fake-mx.test".</summary>
    private const string DaemonGreeting = "220 smtpi-booted";

    /// <summary>The test's drop-in: a shorter watchdog so a hung daemon is restarted in seconds, not 30 s.</summary>
    private const int TestWatchdogSeconds = 10;

    private BootedContainer? _container;
    private string _listenPort = "";

    private BootedContainer Container => _container ?? throw new InvalidOperationException("no container: the set-up failed");

    [OneTimeSetUp]
    public async Task BootAndInstall()
    {
        Requirements.Ensure();
        var missing = new[] { "systemd-nspawn", "mmdebstrap", "nsenter" }.Where(t => Requirements.Which(t) is null).ToList();
        if (missing.Count > 0)
        {
            var tools = await ProcessRunner.RunAsync("apt-get", ["install", "-y", "-qq", "mmdebstrap", "systemd-container", "util-linux"], TimeSpan.FromMinutes(10));
            Assert.That(tools.Succeeded, Is.True, $"missing {string.Join(", ", missing)} and could not install them:\n" + tools.Describe());
        }

        var watch = Stopwatch.StartNew();
        var root = await BootedContainer.CachedRootAsync();
        Step($"Debian 12 root ready in {watch.Elapsed.TotalSeconds:F0} s: {root}");
        var deb = await PackageBuild.GetAsync();
        _container = await BootedContainer.CreateAsync(root);
        File.Copy(deb, Path.Combine(Container.RootOnHost, "root", "package.deb"));
        CopyScripts();

        watch.Restart();
        var state = await Container.BootAsync(TimeSpan.FromMinutes(3));
        Step($"container {Container.Machine} booted (systemd pid {Container.InitPid} on the host): is-system-running = {state} after {watch.Elapsed.TotalSeconds:F1} s");

        var install = await Container.ExecAsync("apt-get install -y --no-install-recommends /root/package.deb 2>&1", TimeSpan.FromMinutes(3));
        Assert.That(install.Succeeded, Is.True, "apt-get install of the .deb inside the container:\n" + install.Describe());
        var exempted = install.Stdout.Split('\n').FirstOrDefault(l => l.Contains("exempted", StringComparison.Ordinal)) ?? "(no MTA line)";
        Step($"apt-get install /root/package.deb: ok; postinst: {exempted.Trim()}");

        // The test's configuration: the fake MX on the container's loopback must be a permitted local destination
        // (the daemon refuses local destinations otherwise), and the load step sends more than the hourly default.
        // WatchdogSec is shortened in a drop-in so the watchdog step takes seconds.
        await Container.CheckedAsync($$"""
            set -e
            sed -i '0,/^{$/s//{\n  "Relay": { "PermittedLocalDestinations": ["127.0.0.2:25"] },\n  "Limits": { "Default": { "MessagesPerHour": 5000, "MessagesPerDay": 10000, "RecipientsPerHour": 5000, "RecipientsPerDay": 10000 } },/' {{Config}}
            smtp-interceptor check-config --config {{Config}}
            mkdir -p /etc/systemd/system/smtp-interceptor.service.d
            printf '[Service]\nWatchdogSec={{TestWatchdogSeconds}}s\n' > /etc/systemd/system/smtp-interceptor.service.d/booted-test.conf
            systemctl daemon-reload
            systemctl restart smtp-interceptor
            id {{Customer}} >/dev/null 2>&1 || useradd -m {{Customer}}
            id {{Suspended}} >/dev/null 2>&1 || useradd -m {{Suspended}}
            """);
        _listenPort = Regex.Match(await Container.CheckedAsync($"smtp-interceptor rules --config {Config}"), @"redirect to :(\d+)").Groups[1].Value;
        Assert.That(_listenPort, Is.Not.Empty, "no 'redirect to :PORT' in the rules output");
        Step($"test configuration: Relay.PermittedLocalDestinations [127.0.0.2:25], hourly limits raised; drop-in WatchdogSec={TestWatchdogSeconds}s (shipped: 30s); listener port {_listenPort} (from `smtp-interceptor rules`)");
        await StartFakeMxAsync();
    }

    [OneTimeTearDown]
    public async Task PowerOffAndDelete()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
            _container = null;
        }
    }

    [Test]
    [Order(1)]
    public async Task Unit_is_active_ready_after_the_verified_table_with_the_mta_user_exempt()
    {
        var show = await Container.CheckedAsync("systemctl show -p ActiveState -p SubState -p StatusText -p NRestarts smtp-interceptor");
        Assert.That(show, Does.Contain("ActiveState=active").And.Contain("SubState=running"), show);
        var status = Regex.Match(show, "StatusText=(.*)").Groups[1].Value;
        Assert.That(status, Does.Match(@"table inet smtp_interceptor verified"), "READY's STATUS= must say the table was verified");
        Step($"smtp-interceptor.service active (running); StatusText: {status}");

        // STATUS= travels in the same sd_notify datagram as READY=1 (SystemdNotifier.Ready), which RunCommand sends
        // only after the table check; so this text is what the unit became "active" with.
        var started = await Container.CheckedAsync("journalctl -b -o short-monotonic --no-pager -u smtp-interceptor | grep 'Started smtp-interceptor.service' | tail -1");
        Step($"READY=1 came with that STATUS= (sent together, after the table check); systemd: {Shorten(started.Trim(), 120)}");

        var tables = await Container.CheckedAsync("nft list tables");
        Assert.That(tables, Does.Contain("table inet smtp_interceptor\n").And.Contain("table inet smtp_interceptor_guard"), tables);
        var exempt = await Container.CheckedAsync("nft list set inet smtp_interceptor exempt_uids | tr -d '\\n' | grep -o 'elements = {[^}]*}'");
        var ids = await Container.CheckedAsync("echo $(id -u root) $(id -u smtp-interceptor) $(id -u postfix)");
        var configLine = await Container.CheckedAsync($"grep '\"ExemptUsers\"' {Config}");
        Assert.Multiple(() =>
        {
            Assert.That(configLine, Does.Contain("\"root\", \"smtp-interceptor\", \"postfix\""), "postinst appends postfix");
            foreach (var uid in ids.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                Assert.That(exempt, Does.Match($@"[{{ ,]{uid}[ ,}}]"), $"uid {uid} in exempt_uids");
            }
        });
        Step($"tables: {string.Join(", ", tables.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(t => t.Trim()))}; config {configLine.Trim()}; exempt_uids {exempt.Trim()} (root, smtp-interceptor, postfix = {ids.Trim()})");
        // Issue 18: postinst creates the STARTTLS CA on first install; its key is the daemon's user's alone.
        var ca = await Container.CheckedAsync("stat -c '%a %U' /etc/smtp-interceptor/client-ca/smtp-interceptor-client-ca.key; grep -c 'BEGIN CERTIFICATE' /etc/smtp-interceptor/client-ca/smtp-interceptor-client-ca.crt");
        Assert.That(ca, Does.StartWith("600 smtp-interceptor\n1"), "the CA made by postinst: key mode and owner, then one certificate\n" + ca);
        Step($"client CA created by postinst: key {ca.Split('\n')[0]}");
    }

    [Test]
    [Order(2)]
    public async Task Customer_mail_is_relayed_attributed_and_visible_in_the_journal_and_status()
    {
        var uid = (await Container.CheckedAsync($"id -u {Customer}")).Trim();
        var swaks = await Container.ExecAsync(
            $"runuser -u {Customer} -- swaks --server 127.0.0.2:25 --from {Customer}@booted.test --to rcpt@example.test --header 'Subject: booted-hello' --body hello --timeout 20 2>&1",
            TimeSpan.FromSeconds(60));
        Assert.That(swaks.Succeeded, Is.True, swaks.Describe());
        var greeting = swaks.Stdout.Split('\n').First(l => l.Contains("<-  220", StringComparison.Ordinal)).Trim();
        Assert.That(greeting, Does.Contain(DaemonGreeting), "the customer's greeting must come from the daemon, not the MX");
        var relayed = await Container.CheckedAsync($"f=$(grep -l 'Subject: booted-hello' {MxDirectory}/*.eml | head -1); head -1 \"$f\"");
        var header = TraceHeader.TryParse(relayed.Trim());
        Assert.That(header, Is.Not.Null, "first line of the relayed message: " + relayed);
        Assert.That((header!.User, header.Uid.ToString(CultureInfo.InvariantCulture)), Is.EqualTo((Customer, uid)));
        Step($"{Customer} (uid {uid}) swaks to 127.0.0.2:25: greeting '{greeting}'; relayed to the fake MX with '{relayed.Trim()}'");

        var journal = await Container.CheckedAsync($"journalctl -u smtp-interceptor -o cat --no-pager | grep 'transaction' | grep 'user={Customer} ' | tail -1");
        Assert.That(journal, Does.Contain($"uid={uid}").And.Contain("127.0.0.2:25"), journal);
        Step($"journalctl -u smtp-interceptor: {Shorten(journal.Trim(), 200)}");
        var status = await Container.CheckedAsync("smtp-interceptor status");
        var row = status.Split('\n').FirstOrDefault(l => Regex.IsMatch(l, $@"\b{Customer}\b"));
        Assert.That(row, Is.Not.Null, "smtp-interceptor status lists the customer:\n" + status);
        Step($"smtp-interceptor status: '{row!.Trim()}'");
    }

    /// <summary>Starts the fake MX on 127.0.0.2:25 as a transient unit (it runs until its stdin closes: a pipe from sleep).</summary>
    private async Task StartFakeMxAsync()
    {
        await Container.CheckedAsync($"""
            set -e
            mkdir -p {MxDirectory}
            systemctl stop fake-mx 2>/dev/null || true
            systemd-run --unit=fake-mx --quiet /bin/sh -c 'sleep infinity | /usr/bin/python3 {Scripts}/fake_mx.py --listen 127.0.0.2:25 --dir {MxDirectory}'
            for i in $(seq 100); do ss -Hltn 'sport = :25' | grep -q 127.0.0.2 && exit 0; sleep 0.1; done
            echo 'fake MX not listening'; journalctl -u fake-mx --no-pager; exit 1
            """);
    }

    /// <summary>The fake MX, the load sender and the probe, world-readable under /opt/booted-test.</summary>
    private void CopyScripts()
    {
        var directory = Path.Combine(Container.RootOnHost, Scripts.TrimStart('/'));
        Directory.CreateDirectory(directory);
        File.Copy(Path.Combine(TestDirectory.FixturesDirectory, "fake_mx.py"), Path.Combine(directory, "fake_mx.py"));
        File.WriteAllText(Path.Combine(directory, "load.py"), LoadSender);
        File.WriteAllText(Path.Combine(directory, "probe.py"), Probe);
        foreach (var file in Directory.GetFiles(directory))
        {
            File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100);
        }
    }

    private static string Shorten(string text, int max) => text.Length <= max ? text : text[..max] + "…";

    /// <summary>One claim and its evidence, printed so it shows in the test output.</summary>
    private static void Step(string line) => TestContext.Progress.WriteLine("booted: " + line);
}
