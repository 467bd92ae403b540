using Interceptor.Daemon.Maintenance;
using Interceptor.Core.Options;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Maintenance;

[TestFixture]
public sealed class StoreRetentionTests
{
    private static readonly DateTimeOffset Now = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);

    [Test]
    public void Retention_prunes_from_its_days_but_never_inside_what_the_quotas_may_still_count()
    {
        // State.RetentionDays 2 with sessions of up to two days: a row started three days ago may have ended inside the
        // last day, and the quota history counts it after a restart, so the hourly pruning must leave it.
        Assert.Multiple(() =>
        {
            Assert.That(StoreRetention.RetainedFrom(Now, TimeSpan.FromDays(30), TimeSpan.FromMinutes(87)), Is.EqualTo(Now - TimeSpan.FromDays(30)));
            Assert.That(StoreRetention.RetainedFrom(Now, TimeSpan.FromDays(2), TimeSpan.FromDays(2)), Is.EqualTo(Now - TimeSpan.FromDays(3)));
        });
    }

    [Test]
    public async Task The_hourly_pruning_cuts_refusals_at_the_retention_and_transactions_where_the_quotas_no_longer_count()
    {
        // Two days' retention, sessions of up to two days: refusals and tallies older than two days go, transactions
        // only when older than three.
        var store = new MemoryStore();
        using var retention = new StoreRetention(store, new StateOptions { Retention = TimeSpan.FromDays(2) }, TimeSpan.FromDays(2), new ManualClock(Now),
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        await retention.StartAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (store.Prunes.IsEmpty && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        await retention.StopAsync(CancellationToken.None);
        Assert.That(store.Prunes.First(), Is.EqualTo((Now - TimeSpan.FromDays(2), Now - TimeSpan.FromDays(3))));
    }
}
