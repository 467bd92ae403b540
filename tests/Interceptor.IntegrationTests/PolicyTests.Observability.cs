using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// What the admin sees besides the log: Prometheus metrics on a loopback endpoint (relayed, refused by reason, the
/// owner-lookup histogram), and the process behind a connection in the trace header (Trace.IncludeProcess).
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed partial class ObservabilityPolicyTests
{
    private const string MetricsListen = "127.0.0.1:9325";

    [Test]
    public async Task Metrics_count_a_delivery_a_quota_refusal_and_the_owner_lookups()
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.MessagesPerHour", 1),
            ("Metrics.Listen", MetricsListen)));
        var alice = TestUsers.Alice;

        AssertDelivered(await SendAsync(s, alice, "counted"), s.Describe());
        var refused = await SendAsync(s, alice, "refused");
        Assert.That(refused.Reply("MAIL")?.Code, Is.EqualTo(451), refused.Describe());

        var (samples, text) = await ScrapeAsync(s);
        double? Sample(string name) => samples.TryGetValue(name, out var value) ? value : null;

        Assert.Multiple(() =>
        {
            Assert.That(Sample("smtpi_messages_relayed_total"), Is.EqualTo(1), text);
            Assert.That(Sample("smtpi_messages_refused_total{reason=\"MessagesPerHour\"}"), Is.EqualTo(1), text);
            Assert.That(Sample("smtpi_owner_lookup_seconds_count"), Is.GreaterThanOrEqualTo(2), "one owner lookup per connection\n" + text);
            Assert.That(Sample("smtpi_owner_lookup_seconds_bucket{le=\"+Inf\"}"), Is.EqualTo(Sample("smtpi_owner_lookup_seconds_count")), text);
            Assert.That(Sample("smtpi_upstream_replies_total{class=\"2xx\"}"), Is.EqualTo(1), text);
            Assert.That(Sample("smtpi_upstream_sessions_reused_total"), Is.EqualTo(1), "the second session took the first one's upstream session\n" + text);
            Assert.That(Sample("smtpi_upstream_sessions_idle"), Is.Not.Null, text);
            Assert.That(Sample("smtpi_upstream_connections_open"), Is.EqualTo(Sample("smtpi_upstream_sessions_idle")), "the idle session is the only upstream connection open\n" + text);
            Assert.That(Sample("smtpi_upstream_connections_max"), Is.GreaterThan(0), text);
            Assert.That(Sample("smtpi_upstream_connection_refusals_total"), Is.Zero, text);
        });
    }

    /// <summary>
    /// Issue 14.4: the figures measured in each layer (relay, attribution, policy) reach /metrics from the running daemon,
    /// per real user: alice's message relayed, bob's connection straight to the listener refused before any SMTP, an
    /// owner lookup for each redirected connection, and a refusal by quota.
    /// </summary>
    [Test]
    public async Task Metrics_scraped_from_the_daemon_count_a_relayed_message_a_refused_connection_and_the_owner_lookups_of_real_users()
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.MessagesPerHour", 1),
            ("Metrics.Listen", MetricsListen),
            ("Metrics.PerUser", true)));
        var (alice, bob) = (TestUsers.Alice, TestUsers.Bob);

        AssertDelivered(await SendAsync(s, alice, "relayed"), s.Describe());
        var overQuota = await SendAsync(s, alice, "over-quota");
        Assert.That(overQuota.Reply("MAIL")?.Code, Is.EqualTo(451), overQuota.Describe());

        // Not redirected: bob connects to the listener itself; it says 421 and closes.
        var direct = await s.Ns.RunAsUserAsync(bob, Requirements.Python,
        [
            "-I", "-c",
            $"import socket; c = socket.create_connection(('127.0.0.1', {new DaemonConfig().ListenPort}), timeout=10); print(c.makefile('rb').readline().decode().strip())",
        ], TimeSpan.FromSeconds(30));
        Assert.That(direct.Stdout, Does.StartWith("421 "), direct.Describe() + s.Describe());

        var (samples, text) = await ScrapeAsync(s);
        double? Sample(string name) => samples.TryGetValue(name, out var value) ? value : null;
        Assert.Multiple(() =>
        {
            Assert.That(Sample("smtpi_transactions_total{outcome=\"delivered\"}"), Is.EqualTo(1), text);
            Assert.That(Sample("smtpi_messages_relayed_total"), Is.EqualTo(1), text);
            Assert.That(Sample($"smtpi_user_transactions_total{{outcome=\"delivered\",user=\"{alice.Name}\"}}"), Is.EqualTo(1), "attributed to alice\n" + text);
            Assert.That(Sample("smtpi_messages_refused_total{reason=\"MessagesPerHour\"}"), Is.EqualTo(1), text);
            Assert.That(Sample($"smtpi_user_refusals_total{{reason=\"MessagesPerHour\",user=\"{alice.Name}\"}}"), Is.EqualTo(1), text);
            Assert.That(Sample("smtpi_connections_refused_total{reason=\"not_redirected\"}"), Is.EqualTo(1), "bob's direct connection\n" + text);
            Assert.That(Sample("smtpi_connections_refused_total{reason=\"owner_unknown\"}"), Is.Zero, text);
            Assert.That(Sample("smtpi_owner_lookup_seconds_count"), Is.EqualTo(2), "one owner lookup per redirected connection, none for the direct one\n" + text);
            Assert.That(Sample("smtpi_owner_lookup_seconds_bucket{le=\"+Inf\"}"), Is.EqualTo(2), text);
            Assert.That(Sample("smtpi_owner_lookup_seconds_sum"), Is.GreaterThan(0).And.LessThan(1), text);
        });
    }

    /// <summary>GET /metrics from inside the namespace: every sample by series (an empty label set "{}" by the bare name).</summary>
    internal static async Task<(Dictionary<string, double> Samples, string Text)> ScrapeAsync(Scenario s)
    {
        var get = await s.Ns.RunAsync(Requirements.Python,
        [
            "-I", "-c",
            $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=10); print(r.status); print(r.read().decode())",
        ]);
        Assert.That(get.Succeeded, Is.True, get.Describe() + s.Describe());
        var lines = get.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines[0], Is.EqualTo("200"), get.Stdout);
        var samples = lines.Skip(1)
            .Where(l => !l.StartsWith('#'))
            .Select(l => (Series: l[..l.LastIndexOf(' ')].Replace("{}", "", StringComparison.Ordinal), Value: l[(l.LastIndexOf(' ') + 1)..]))
            .ToDictionary(p => p.Series, p => double.Parse(p.Value, CultureInfo.InvariantCulture), StringComparer.Ordinal);
        return (samples, get.Stdout);
    }

    [Test]
    public async Task The_trace_header_names_the_process_behind_the_socket_when_asked_to()
    {
        await using var s = await Scenario.StartAsync(config: Config(("Trace.IncludeProcess", true)));
        var alice = TestUsers.Alice;
        var message = TestMessage.Small("alice@client.test", To, "which-script");
        var file = s.Dir.Write("which-script.eml", message);
        var python = File.ResolveLinkTarget(Requirements.Python, returnFinalTarget: true)?.FullName ?? Requirements.Python;

        // A client that, like a PHP script doing some work between commands, keeps its socket a moment before DATA:
        // the lookup is best effort and off the hot path, so a process gone within milliseconds may go unnamed.
        var run = await s.Ns.RunAsUserAsync(alice, Requirements.Python, ["-I", "-c", PausingClient, "127.0.0.2", "25", "alice@client.test", To, file], TimeSpan.FromSeconds(30));
        Assert.That(run.Succeeded, Is.True, run.Describe() + s.Describe());
        using var client = JsonDocument.Parse(run.Stdout.Split('\n').Last(l => l.StartsWith('{')));
        var pid = client.RootElement.GetProperty("pid").GetInt32();
        var cwd = client.RootElement.GetProperty("cwd").GetString();

        var relayed = s.RequireMx.Messages().Single();
        var header = ProcessHeader().Match(relayed.FirstLine);
        Assert.That(header.Success, Is.True, $"the trace header has no process part: '{relayed.FirstLine}'" + s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(header.Groups["uid"].Value, Is.EqualTo(alice.Uid.ToString(CultureInfo.InvariantCulture)), relayed.FirstLine);
            Assert.That(header.Groups["user"].Value, Is.EqualTo(alice.Name), relayed.FirstLine);
            Assert.That(header.Groups["pid"].Value, Is.EqualTo(pid.ToString(CultureInfo.InvariantCulture)), "the client's own pid\n" + relayed.FirstLine);
            Assert.That(header.Groups["exe"].Value, Is.EqualTo(python), "the python3 executable\n" + relayed.FirstLine);
            Assert.That(header.Groups["cwd"].Value, Is.EqualTo(cwd), "the client's working directory\n" + relayed.FirstLine);
        });

        // Nothing else in the message changed.
        TestMessage.AssertSameBytes(message, relayed.Bytes[(relayed.FirstLine.Length + 2)..], " (after the trace header)");
    }

    private const string PausingClient = """
        import json, os, smtplib, sys, time
        host, port, sender, recipient, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
        client = smtplib.SMTP(host, port, local_hostname="client.test", timeout=30)
        time.sleep(0.5)
        with open(path, "rb") as f:
            client.sendmail(sender, [recipient], f.read())
        client.quit()
        print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd()}))
        """;

    [GeneratedRegex(@"^X-Interceptor-Origin: uid=(?<uid>\d+) user=(?<user>[^;\s]+); host=[^;\s]+; id=[^;\s]+; process=pid=(?<pid>\d+) exe=(?<exe>\S+)(?: cwd=(?<cwd>.*))?$")]
    private static partial Regex ProcessHeader();
}
