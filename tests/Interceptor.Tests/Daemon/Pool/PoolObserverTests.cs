using Interceptor.Core.Pool;
using Interceptor.Daemon.Pool;

namespace Interceptor.Tests.Daemon.Pool;

/// <summary>The daemon's observer: every change stored (also after the store failed), each event logged and alerted.</summary>
public class PoolObserverTests
{
    [Test]
    public async Task A_burn_is_stored_with_its_promotion_logged_and_alerted_naming_relay_and_reason()
    {
        await using var f = new PoolFixture();
        await f.Observer.StartAsync(CancellationToken.None);

        f.Observer.Publish(f.Pool.Burn("relay1", "by an admin: S3150"));
        await f.Observer.FlushAsync(CancellationToken.None);
        await PoolFixture.WaitForAsync(() => f.Alerts.Count == 2, "two alerts");

        var saved = f.Saves.SelectMany(s => s).ToDictionary(s => s.Name);
        Assert.That(saved["relay1"].Status, Is.EqualTo(RelayStatus.Burned));
        Assert.That(saved["relay2"].Status, Is.EqualTo(RelayStatus.InRotation), "the promotion is stored with the burn");
        Assert.That(f.Alerts[0].Event, Is.EqualTo("relay-burned"));
        Assert.That(f.Alerts[0].Facts["SMTPI_RELAY"], Is.EqualTo("relay1"));
        Assert.That(f.Alerts[0].Facts["SMTPI_REASON"], Is.EqualTo("by an admin: S3150"));
        Assert.That(f.Alerts[1].Event, Is.EqualTo("relay-promoted"));
        Assert.That(f.Alerts[1].Facts["SMTPI_RELAY"], Is.EqualTo("relay2"));
        Assert.That(f.Logger.Errors, Has.One.EqualTo("relay relay1 burned: by an admin: S3150"));
        Assert.That(f.Logger.Lines, Has.One.EqualTo("relay relay2 promoted from the reserve: replaces relay1"));
    }

    [Test]
    public async Task A_failing_store_is_retried_until_it_takes_the_newest_state()
    {
        await using var f = new PoolFixture(failingSaves: 1);
        await f.Observer.StartAsync(CancellationToken.None);

        f.Observer.Publish(f.Pool.Burn("relay1", "listed"));
        f.Observer.Publish(f.Pool.Restore("relay1", "by an admin"));
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await f.Observer.FlushAsync(bound.Token);

        Assert.That(f.Observer.Unsaved, Is.Zero);
        Assert.That(f.Logger.Errors, Has.Some.StartsWith("cannot store the relay pool's state"));
        var last = f.Saves.SelectMany(s => s).Last(s => s.Name == "relay1");
        Assert.That(last.Status, Is.Not.EqualTo(RelayStatus.Burned), "the restore, published after the burn, is what the store keeps");
        Assert.That(f.Logger.Lines, Has.Some.StartsWith("relay pool state stored again after a failure"));
    }

    [Test]
    public async Task A_refused_login_alerts_naming_the_user_at_most_once_per_interval()
    {
        await using var f = new PoolFixture();
        await f.Observer.StartAsync(CancellationToken.None);

        f.Observer.LoginRefused("relay1", "alice", "535 5.7.8 Error: authentication failed");
        f.Observer.LoginRefused("relay1", "alice", "535 5.7.8 Error: authentication failed");
        f.Clock.Advance(PoolObserver.LoginAlertInterval);
        f.Observer.LoginRefused("relay1", "alice", "535 5.7.8 Error: authentication failed");
        await PoolFixture.WaitForAsync(() => f.Alerts.Count == 2, "two alerts");

        Assert.That(f.Alerts.Select(a => a.Event), Is.EqualTo(new[] { "relay-login-refused", "relay-login-refused" }));
        Assert.That(f.Alerts[0].Facts["SMTPI_USER"], Is.EqualTo("alice"));
        Assert.That(f.Logger.Errors.Count(l => l.Contains("refused the login of user alice", StringComparison.Ordinal)), Is.EqualTo(3), "every refusal is logged");
    }

    [Test]
    public async Task Carried_messages_count_in_the_last_hour_of_their_relay_only()
    {
        await using var f = new PoolFixture();

        f.Observer.Carried("relay1");
        f.Observer.Carried("relay1");
        f.Clock.Advance(TimeSpan.FromMinutes(59));
        f.Observer.Carried("relay1");

        Assert.That(f.Observer.Hour.LastHour("relay1"), Is.EqualTo(3));
        Assert.That(f.Observer.Hour.LastHour("relay2"), Is.Zero);
        f.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.That(f.Observer.Hour.LastHour("relay1"), Is.EqualTo(1), "the first two are an hour old now");
    }

    [Test]
    public async Task The_host_burning_is_its_own_event()
    {
        await using var f = new PoolFixture();
        await f.Observer.StartAsync(CancellationToken.None);

        f.Observer.Publish(f.Pool.Burn(RelayPool.HostKey, "5 blocklist replies"));
        await PoolFixture.WaitForAsync(() => f.Alerts.Count == 1, "one alert");

        Assert.That(f.Alerts[0].Event, Is.EqualTo("host-burned"));
        Assert.That(f.Alerts[0].Facts["SMTPI_RELAY"], Is.EqualTo("host"));
        Assert.That(f.Logger.Errors, Has.One.StartsWith("the host's own address burned: 5 blocklist replies"));
    }
}
