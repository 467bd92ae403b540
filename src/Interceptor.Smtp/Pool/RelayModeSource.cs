using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Smtp.Pool;

/// <summary>
/// Picks each client's upstream by its user's relay mode (<c>Relay.ModeByUser.NAME</c>, else <c>Relay.Mode</c>):
/// OriginalDestination goes direct, Smarthost through the pool, Auto direct while the host's own address is not burned
/// (its replies then count towards burning it, <see cref="RelayPool.HostKey"/>) and through the pool once it is.
/// The mode is decided when the client connects: a session that began direct finishes direct.
/// </summary>
public sealed class RelayModeSource(RelayOptions relay, UpstreamConnectionCache direct, PoolUpstreamSource smarthosts, RelayPool pool, IRelayPoolObserver observer)
    : IUpstreamSource
{
    /// <summary>The mode for <paramref name="user"/>.</summary>
    public RelayMode ModeFor(string user) => relay.ModeByUser.TryGetValue(user, out var own) ? own : relay.Mode;

    public UpstreamLease Lease(ConnectionOrigin origin)
    {
        ArgumentNullException.ThrowIfNull(origin);
        return ModeFor(origin.User) switch
        {
            RelayMode.Smarthost => smarthosts.Lease(origin),
            RelayMode.Auto when pool.HostBurned => smarthosts.Lease(origin),
            RelayMode.Auto => new UpstreamLease(new WatchedRoute(direct.RouteTo(origin.OriginalDestination), PoolReplyWatcher.ForHost(pool, observer, origin.Uid))),
            _ => direct.Lease(origin),
        };
    }

    /// <summary>A direct route whose sessions report their replies while this lease holds them (not after: the
    /// cache may hand them to a user in another mode).</summary>
    private sealed class WatchedRoute(IUpstreamRoute inner, IUpstreamReplyWatcher watcher) : IUpstreamRoute
    {
        public string Name => inner.Name;

        public async Task<UpstreamHandOut> TakeAsync(bool fresh, CancellationToken cancellationToken)
        {
            var handOut = await inner.TakeAsync(fresh, cancellationToken);
            if (handOut.Connection is { } connection)
            {
                connection.Watcher = watcher;
            }

            return handOut;
        }

        public Task GiveBackAsync(UpstreamConnection connection)
        {
            connection.Watcher = null;
            return inner.GiveBackAsync(connection);
        }
    }
}
