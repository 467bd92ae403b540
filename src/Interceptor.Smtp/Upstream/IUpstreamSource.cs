using Interceptor.Core.Replies;
using Interceptor.Smtp.Session;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// Where a client's mail goes: hands each inbound session a lease on an upstream for its origin. Today's implementation
/// is the original destination with a connection cache (<see cref="UpstreamConnectionCache"/>); a smarthost pool is
/// another (it picks a relay and a login for the origin, authenticates in <see cref="IUpstreamRoute.TakeAsync"/> and
/// keys reuse by relay and login). Sessions see only the lease.
/// </summary>
public interface IUpstreamSource
{
    /// <summary>A lease for this client; nothing is opened until its first operation.</summary>
    UpstreamLease Lease(ConnectionOrigin origin);
}

/// <summary>
/// One upstream a lease draws its sessions from and gives them back to: a destination, or a relay and its login.
/// Implemented by each <see cref="IUpstreamSource"/>; the lease does the rest (reopening, the retry of a dead reused session).
/// </summary>
public interface IUpstreamRoute
{
    /// <summary>The upstream as replies and logs name it ("192.0.2.1:25").</summary>
    string Name { get; }

    /// <summary>
    /// A session ready for MAIL: a kept one unless <paramref name="fresh"/>, else a new connection, greeted and
    /// negotiated. Refusals by the upstream are values; network faults throw <see cref="UpstreamException"/>.
    /// </summary>
    Task<UpstreamHandOut> TakeAsync(bool fresh, CancellationToken cancellationToken);

    /// <summary>Takes back a session the lease is done with: kept for another client or closed. Never throws.</summary>
    Task GiveBackAsync(UpstreamConnection connection);
}

/// <summary>
/// What <see cref="IUpstreamRoute.TakeAsync"/> handed out: a session or the upstream's refusal. <paramref name="Reused"/>
/// says it sat idle before, so the upstream may have closed it meanwhile, which only its first command can show.
/// </summary>
public readonly record struct UpstreamHandOut(UpstreamConnection? Connection, SmtpReply? Refusal, bool Reused);
