using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Decide;
using Interceptor.Core.Replies;
using Interceptor.Linux;
using Interceptor.Smtp.Session;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribute;

/// <summary>
/// Finds out where a hijacked connection was going and which Unix user opened it. Anything it cannot
/// establish is refused (fail closed): mail of unknown origin is never relayed.
/// </summary>
public sealed class ConnectionAttributor(SocketOwnerLookup owners, DestinationPolicy destinations, ILogger logger, Record.MetricsRegistry? metrics = null)
{
    /// <summary>Either the origin of the connection (and its socket inode), or the reply that refuses it.</summary>
    public (ConnectionOrigin? Origin, ulong Inode, SmtpReply? Refusal) Attribute(Socket socket)
    {
        var client = (IPEndPoint)socket.RemoteEndPoint!;
        var destination = OriginalDestination.TryRead(socket);
        if (destination is null)
        {
            logger.LogWarning("refused {Client}: the connection was not redirected by the nft rules (no original destination)", client);
            metrics?.RecordConnectionRefused("not_redirected");
            return (null, 0, new SmtpReply(421, "4.3.0", "this connection was not redirected by the interceptor; connect to the real destination's port 25"));
        }

        var refusal = destinations.Check(destination);
        if (refusal is not null)
        {
            logger.LogWarning("refused {Client} to {Destination}: {Reason}", client, destination, refusal.Text);
            metrics?.RecordConnectionRefused("local_destination");
            return (null, 0, refusal);
        }

        SocketOwner? owner;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            owner = owners.Find(client, destination);
            metrics?.RecordOwnerLookup(System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
        catch (LinuxInteropException e)
        {
            logger.LogError("refused {Client} to {Destination}: owner lookup failed: {Reason}", client, destination, e.Message);
            owner = null;
        }

        if (owner is null)
        {
            logger.LogWarning("refused {Client} to {Destination}: no socket owner found", client, destination);
            metrics?.RecordConnectionRefused("owner_unknown");
            return (null, 0, new SmtpReply(421, "4.3.0", "cannot determine which user opened this connection; mail of unknown origin is not relayed"));
        }

        var uid = owner.Value.Uid;
        var user = UserDatabase.NameOf(uid) ?? $"#{uid}";
        return (new ConnectionOrigin(uid, user, client, destination), owner.Value.Inode, null);
    }
}
