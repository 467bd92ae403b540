using Interceptor.Daemon.Maintenance;

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
}
