using System.Net;
using Interceptor.Daemon.Metrics;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>What the start says about Metrics.Listen (MetricsEndpoint.Warnings.cs), with the kernel's settings given.</summary>
public class MetricsEndpointWarningsTests
{
    [Test]
    public void The_start_warns_when_only_root_may_scrape_and_when_any_user_may_take_the_port()
    {
        var unprivileged = IPEndPoint.Parse("127.0.0.1:9325");
        var privileged = IPEndPoint.Parse("127.0.0.1:925");

        var both = MetricsEndpoint.Warnings(unprivileged, [0u], () => 1024, Defaults).ToList();
        var none = MetricsEndpoint.Warnings(privileged, [0u, 999u], () => 1024, Defaults).ToList();
        var unknown = MetricsEndpoint.Warnings(privileged, [999u], () => throw new Interceptor.Linux.LinuxInteropException("no such file"), Defaults).ToList();
        var containers = MetricsEndpoint.Warnings(privileged, [999u], () => 0, Defaults).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(both, Has.Count.EqualTo(2));
            Assert.That(both[0], Does.StartWith("metrics: only root may connect to http://127.0.0.1:9325/metrics (Metrics.ScraperUsers is empty)"));
            Assert.That(both[1], Does.StartWith("metrics: port 9325 may be bound by any local user (net.ipv4.ip_unprivileged_port_start is 1024)"));
            Assert.That(none, Is.Empty, "a scraper user named and a port below the sysctl");
            Assert.That(unknown, Is.EqualTo(new[] { "metrics: port 925 may be bound by any local user (net.ipv4.ip_unprivileged_port_start could not be read: no such file): a customer who takes it while the daemon restarts keeps the endpoint down and every scrape fails until she lets go (the kernel drops her answers); give Metrics.Listen a free port below 1024" }));
            Assert.That(containers, Has.Count.EqualTo(1).And.Some.Contains("is 0"), "every port is unprivileged at 0");
        });
    }

    [Test]
    public void The_start_warns_of_syncookies_for_every_connection_and_of_a_port_connect_may_pick()
    {
        var endpoint = IPEndPoint.Parse("127.0.0.1:925");
        string? Kernel(string path, string syncookies, string range, string reserved) => path switch
        {
            "net/ipv4/tcp_syncookies" => syncookies + "\n",
            "net/ipv4/ip_local_port_range" => range + "\n",
            "net/ipv4/ip_local_reserved_ports" => reserved + "\n",
            _ => null,
        };
        List<string> WarningsWith(string syncookies, string range, string reserved) =>
            [.. MetricsEndpoint.Warnings(endpoint, [0u, 999u], () => 1024, path => Kernel(path, syncookies, range, reserved))];

        Assert.Multiple(() =>
        {
            Assert.That(WarningsWith("1", "32768\t60999", ""), Is.Empty, "the defaults");
            Assert.That(WarningsWith("2", "32768\t60999", ""), Is.EqualTo(new[] { "metrics: net.ipv4.tcp_syncookies is 2, so the kernel answers every connection with a syncookie SYN-ACK, which has no socket; the table drops every SYN-ACK from port 925 that is not of smtp-interceptor's socket, so no scrape connects. Set it to 1 (the default)" }));
            Assert.That(WarningsWith("1", "900\t1000", ""), Is.EqualTo(new[] { "metrics: port 925 is inside net.ipv4.ip_local_port_range (900-1000): while the endpoint does not hold it (the daemon stopped), the kernel may give it to a local connection as its source port, and the table drops that connection's SYN over lo. Give Metrics.Listen a port outside the range, or add it to net.ipv4.ip_local_reserved_ports" }));
            Assert.That(WarningsWith("1", "925\t925", "80,443"), Has.Count.EqualTo(1), "the range's ends are inside");
            Assert.That(WarningsWith("1", "900\t1000", "80,920-930"), Is.Empty, "reserved in a range");
            Assert.That(WarningsWith("1", "900\t1000", "925"), Is.Empty, "reserved alone");
            Assert.That(WarningsWith("1", "926\t1000", ""), Is.Empty, "just below the range");
            Assert.That(WarningsWith("1", "garbage", ""), Is.Empty, "an unreadable range says nothing");
            Assert.That(MetricsEndpoint.Warnings(endpoint, [0u, 999u], () => 1024, _ => null), Is.Empty, "no such sysctls");
        });
    }

    // The kernel's defaults: syncookies only under a flood, connect() picks from 32768-60999, nothing reserved.
    private static string? Defaults(string path) => path switch
    {
        "net/ipv4/tcp_syncookies" => "1\n",
        "net/ipv4/ip_local_port_range" => "32768\t60999\n",
        "net/ipv4/ip_local_reserved_ports" => "\n",
        _ => null,
    };
}
