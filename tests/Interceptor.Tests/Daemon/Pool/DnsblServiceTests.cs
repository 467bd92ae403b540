using System.Net;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Pool;

namespace Interceptor.Tests.Daemon.Pool;

/// <summary>One DNSBL round: a listing burns and promotes; a resolver error is logged and alerted, never a burn.</summary>
public class DnsblServiceTests
{
    private static DnsblService Service(PoolFixture f, Func<IPAddress, DnsblResult> answer) => new(
        f.Pool,
        [("relay1", IPAddress.Parse("198.51.100.10")), ("relay2", IPAddress.Parse("198.51.100.20"))],
        (address, _) => Task.FromResult<IReadOnlyList<DnsblResult>>([answer(address)]),
        f.Observer,
        TimeSpan.FromMinutes(60),
        f.Logger,
        f.Clock);

    [Test]
    public async Task A_listed_egress_address_burns_its_relay_and_promotes_the_standby()
    {
        await using var f = new PoolFixture();
        await f.Observer.StartAsync(CancellationToken.None);
        var service = Service(f, a => a.ToString() == "198.51.100.10"
            ? new DnsblResult("zen.test", DnsblVerdict.Listed, "127.0.0.2")
            : new DnsblResult("zen.test", DnsblVerdict.NotListed, "NXDOMAIN"));

        await service.CheckAllAsync(CancellationToken.None);
        await f.Observer.FlushAsync(CancellationToken.None);

        var states = f.Pool.Snapshot().ToDictionary(s => s.Name);
        Assert.That(states["relay1"].Status, Is.EqualTo(RelayStatus.Burned));
        Assert.That(states["relay1"].Reason, Is.EqualTo("DNSBL listed: zen.test 127.0.0.2"));
        Assert.That(states["relay2"].Status, Is.EqualTo(RelayStatus.InRotation));
        Assert.That(states["relay2"].LastDnsbl, Is.EqualTo("clean"));
        Assert.That(f.Saves.SelectMany(s => s).Select(s => s.Name), Does.Contain("relay1").And.Contain("relay2"));
        Assert.That(service.Rounds, Is.EqualTo(1));
    }

    [Test]
    public async Task A_127_255_255_254_answer_is_logged_and_alerted_but_burns_nothing()
    {
        await using var f = new PoolFixture();
        await f.Observer.StartAsync(CancellationToken.None);
        var service = Service(f, _ => new DnsblResult("zen.test", DnsblVerdict.ResolverError, "127.255.255.254"));

        await service.CheckAllAsync(CancellationToken.None);
        await PoolFixture.WaitForAsync(() => f.Alerts.Count == 2, "an alert per relay");

        Assert.That(f.Pool.Snapshot().Where(s => s.Status == RelayStatus.Burned), Is.Empty);
        Assert.That(f.Alerts.Select(a => a.Event).Distinct(), Is.EqualTo(new[] { "dnsbl-error" }));
        Assert.That(f.Logger.Lines, Has.Some.EqualTo("DNSBL check of relay1 (198.51.100.10): resolver error: zen.test 127.255.255.254; a resolver error, never counted as a listing"));
    }
}
