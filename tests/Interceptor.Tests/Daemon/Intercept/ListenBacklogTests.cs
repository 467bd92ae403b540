using Interceptor.Core.Options;
using Interceptor.Daemon.Intercept;

namespace Interceptor.Tests.Daemon.Intercept;

/// <summary>Issue 19: the listeners' backlog holds a burst of connects as large as the session cap.</summary>
[TestFixture]
public sealed class ListenBacklogTests
{
    [TestCase(DescriptorBudget.DefaultMaxConnections, 10_000)] // the default cap: a burst of all of it can wait
    [TestCase(70, 1024)] // a tiny cap keeps the backlog the listener always had
    [TestCase(200_000, 65_535)] // the most Linux takes (net.core.somaxconn caps it further)
    public void The_backlog_follows_the_session_cap_within_bounds(int maxConnections, int backlog)
    {
        Assert.That(InterceptListener.BacklogFor(maxConnections), Is.EqualTo(backlog));
    }
}
