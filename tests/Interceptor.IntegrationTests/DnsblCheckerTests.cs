using System.Net;
using Interceptor.Core.Pool;
using Interceptor.Smtp.Pool;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// DnsblChecker (issue 15) against a real DNS server answering for a blocklist zone: listed, not listed, and Spamhaus's
/// 127.255.255.254 "query refused" answer, which must never count as a listing; and a server that does not answer.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class DnsblCheckerTests
{
    private const string Zone = "zen.test";

    [Test]
    public async Task Listed_not_listed_and_resolver_error_answers_are_told_apart()
    {
        Requirements.Ensure();
        await using var dns = await LocalDnsbl.StartAsync(Zone, new Dictionary<string, string>
        {
            ["10.2.0.192"] = "127.0.0.2",
            ["11.2.0.192"] = "127.255.255.254",
        });
        var checker = new DnsblChecker([Zone], dns.EndPoint, NullLogger.Instance);

        var listed = await checker.CheckAsync(IPAddress.Parse("192.0.2.10"), CancellationToken.None);
        var refused = await checker.CheckAsync(IPAddress.Parse("192.0.2.11"), CancellationToken.None);
        var clean = await checker.CheckAsync(IPAddress.Parse("192.0.2.12"), CancellationToken.None);

        Assert.That(listed.Single(), Is.EqualTo(new DnsblResult(Zone, DnsblVerdict.Listed, "127.0.0.2")), dns.Transcript());
        Assert.That(refused.Single(), Is.EqualTo(new DnsblResult(Zone, DnsblVerdict.ResolverError, "127.255.255.254")), dns.Transcript());
        Assert.That(clean.Single(), Is.EqualTo(new DnsblResult(Zone, DnsblVerdict.NotListed, "NXDOMAIN")), dns.Transcript());
        Assert.That(dns.Transcript(), Does.Contain("10.2.0.192.zen.test"), "the reversed-octet name reached the server");
    }

    [Test]
    public async Task A_server_that_never_answers_is_a_resolver_error_within_the_bound()
    {
        Requirements.Ensure();
        // A UDP socket that reads nothing: queries vanish as into a firewalled resolver.
        using var silent = new System.Net.Sockets.UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var checker = new DnsblChecker([Zone, "other.test"], (IPEndPoint)silent.Client.LocalEndPoint!, NullLogger.Instance);
        var started = System.Diagnostics.Stopwatch.StartNew();

        var results = await checker.CheckAsync(IPAddress.Parse("192.0.2.10"), CancellationToken.None);

        Assert.That(results.Select(r => r.Verdict), Is.EqualTo(new[] { DnsblVerdict.ResolverError, DnsblVerdict.ResolverError }));
        Assert.That(started.Elapsed, Is.LessThan(DnsblChecker.Timeout * (DnsblChecker.Retries + 1) + TimeSpan.FromSeconds(5)), "zones are asked at once, each bounded");
    }
}
