using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Smtp.Pool;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;
using static Interceptor.Tests.Smtp.Pool.PoolTestParts;

namespace Interceptor.Tests.Smtp.Pool;

/// <summary><see cref="RelayModeSource"/>: each user's mode, and Auto's switch from direct to the pool once the host burns.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class RelayModeSourceTests
{
    private const string Banned = "550 5.7.606 Access denied, banned sending IP [203.0.113.5]";

    private static (RelayModeSource Source, RelayPool Pool) Build(RelayOptions relay, ScriptedConnector scripted, int threshold = 5)
    {
        var pool = NewPool(threshold);
        var observer = new RecordingPoolObserver();
        var cache = new UpstreamConnectionCache(Settings, scripted);
        var smarthosts = new PoolUpstreamSource(Relays, pool, observer, RelayCredentials.Empty, cache, new RoutingConnector(scripted, Relay1, Relay2));
        return (new RelayModeSource(relay, cache, smarthosts, pool, observer), pool);
    }

    [Test]
    public async Task A_users_own_mode_wins_over_Relay_Mode()
    {
        var relay = new RelayOptions { Mode = RelayMode.Auto, ModeByUser = new Dictionary<string, RelayMode> { ["alice"] = RelayMode.Smarthost, ["bob"] = RelayMode.OriginalDestination } };
        var (source, _) = Build(relay, new ScriptedConnector());

        Assert.That(source.ModeFor("alice"), Is.EqualTo(RelayMode.Smarthost));
        Assert.That(source.ModeFor("bob"), Is.EqualTo(RelayMode.OriginalDestination));
        Assert.That(source.ModeFor("carol"), Is.EqualTo(RelayMode.Auto));
        await using var pooled = source.Lease(Origin("alice"));
        await using var direct = source.Lease(Origin("bob"));
        Assert.That(pooled.Name, Is.EqualTo("relay pool"));
        Assert.That(direct.Name, Is.EqualTo("192.0.2.25:25"));
    }

    [Test]
    public async Task In_Auto_mode_direct_burn_replies_burn_the_host_and_the_next_client_goes_through_the_pool()
    {
        var scripted = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<a@site.test>").Server(Banned)
            .Client("QUIT"));
        var (source, pool) = Build(new RelayOptions { Mode = RelayMode.Auto }, scripted, threshold: 1);

        await using (var direct = source.Lease(Origin("alice")))
        {
            Assert.That(direct.Name, Is.EqualTo("192.0.2.25:25"));
            var result = await direct.MailAsync(new EnvelopeCommand("a@site.test", []), CancellationToken.None);
            Assert.That(result.Reply.Code, Is.EqualTo(550));
        }

        Assert.That(pool.HostBurned, Is.True);
        Assert.That(pool.Snapshot().Single(s => s.Name == RelayPool.HostKey).Evidence, Has.One.Contains("5.7.606"));
        await using var next = source.Lease(Origin("bob"));
        Assert.That(next.Name, Is.EqualTo("relay pool"));
    }

    [Test]
    public async Task OriginalDestination_replies_never_count_against_the_host()
    {
        var scripted = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<a@site.test>").Server(Banned)
            .Client("QUIT"));
        var (source, pool) = Build(new RelayOptions { Mode = RelayMode.OriginalDestination }, scripted, threshold: 1);

        await using (var direct = source.Lease(Origin("alice")))
        {
            await direct.MailAsync(new EnvelopeCommand("a@site.test", []), CancellationToken.None);
        }

        Assert.That(pool.HostBurned, Is.False);
    }
}
