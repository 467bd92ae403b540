using System.Net;
using Interceptor.Core.Net;

namespace Interceptor.Linux;

/// <summary>One direction of a tracked TCP connection, as conntrack records it.</summary>
public readonly record struct ConntrackTuple(IPEndPoint Source, IPEndPoint Destination);

/// <summary>
/// A conntrack entry: <see cref="Original"/> is what the client's socket sent (its own port, the
/// real destination); <see cref="Reply"/> is what answers after NAT (our listener to the client
/// endpoint the accepted socket shows).
/// </summary>
public sealed record ConntrackEntry(ConntrackTuple Original, ConntrackTuple Reply);

/// <summary>
/// Asks the kernel's connection tracking (ctnetlink) for the entry of a redirected connection: once
/// for every connection (its client's own port). Sockets are opened on first use and a few kept
/// for reuse, as many as the owner lookup's. Thread-safe; create one per process and share it.
/// </summary>
public sealed class ConntrackLookup : IDisposable
{
    private static readonly TimeSpan ReceiveTimeout = TimeSpan.FromSeconds(1);

    // One query a connection, from the socket threads and the pool, as the owner lookup's.
    private readonly NetlinkSocketPool<ConntrackSocket> _pool = new(Open, NetlinkSocketPool<ConntrackSocket>.PerConnectionIdle);
    private bool _disposed;

    /// <summary>
    /// Returns the entry whose reply tuple goes from <paramref name="replySource"/> (the accepted
    /// socket's local end: our listener) to <paramref name="replyDestination"/> (its remote end),
    /// or null when conntrack tracks no such connection.
    /// </summary>
    /// <exception cref="OwnerLookupException">
    /// Conntrack could not be asked (no ctnetlink, EPERM, timeout, malformed or mismatched answer);
    /// <see cref="LinuxInteropException.Errno"/> says why when the kernel said so.
    /// </exception>
    public ConntrackEntry? FindByReply(IPEndPoint replySource, IPEndPoint replyDestination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(replySource);
        ArgumentNullException.ThrowIfNull(replyDestination);

        var source = MappedAddress.Unmap(replySource);
        var destination = MappedAddress.Unmap(replyDestination);
        if (source.AddressFamily != destination.AddressFamily)
        {
            return null; // no connection has ends of two families
        }

        var socket = _pool.Rent();
        ConntrackEntry? entry;
        try
        {
            entry = socket.Query(source, destination);
        }
        finally
        {
            _pool.Return(socket);
        }

        // The kernel looks up exactly this tuple; anything else is a reply we must not trust.
        if (entry is not null && !(entry.Reply.Source.Equals(source) && entry.Reply.Destination.Equals(destination)))
        {
            throw new OwnerLookupException(
                $"ctnetlink answered for reply tuple {entry.Reply.Source} -> {entry.Reply.Destination}, asked for {source} -> {destination}");
        }

        return entry;
    }

    /// <summary>
    /// Whether <paramref name="error"/> says conntrack cannot be asked on this host at all (no nfnetlink or ctnetlink, no
    /// CAP_NET_ADMIN), as opposed to a query that failed (a timeout, no descriptor left, a malformed answer).
    /// </summary>
    public static bool IsUnavailable(LinuxInteropException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        var errno = error.Errno;
        return errno == Tmds.Linux.LibC.EAFNOSUPPORT || errno == Tmds.Linux.LibC.EPROTONOSUPPORT || errno == Tmds.Linux.LibC.EACCES
            || errno == Tmds.Linux.LibC.EPERM || errno == Tmds.Linux.LibC.EOPNOTSUPP || errno == Tmds.Linux.LibC.EINVAL;
    }

    public void Dispose()
    {
        _disposed = true;
        _pool.Dispose();
    }

    private static ConntrackSocket Open()
    {
        try
        {
            return ConntrackSocket.Open(ReceiveTimeout);
        }
        catch (LinuxInteropException e) when (e is not OwnerLookupException)
        {
            // EPROTONOSUPPORT without nfnetlink, EMFILE under a flood: this connection fails closed.
            throw e.Errno == 0
                ? new OwnerLookupException($"opening a ctnetlink socket failed: {e.Message}", e)
                : new OwnerLookupException(e.Call ?? "socket(AF_NETLINK, NETLINK_NETFILTER)", e.Errno);
        }
    }
}
