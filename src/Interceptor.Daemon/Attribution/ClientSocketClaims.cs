using System.Net;
using Interceptor.Core.Net;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// The client sockets whose connections the daemon has attributed and still serves. One client socket is at one end of
/// one connection: a second connection whose exact owner lookup finds a socket another connection holds is not that
/// socket's, whatever its addresses say. That happens when NAT moves a redirected connection's client port onto the
/// local port of another live redirected socket to the same MX, one whose own port NAT had moved (so no reply tuple
/// holds it): the lookup's 4-tuple is then exactly that socket's. Conntrack, asked first (ClientPortCheck), names the
/// client's own port, so this is a check that fails closed: a connection finding a held socket is refused.
/// </summary>
/// <remarks>
/// A socket is known by its inode together with its client address and port and its destination: the kernel's socket
/// inode numbers are 32 bits, shared with pipes, and come round again; a new socket given a held socket's number has
/// other addresses, so it is not mistaken for it, while a real collision always has the very same ones.
/// </remarks>
public sealed class ClientSocketClaims
{
    private readonly HashSet<ClientSocket> _claimed = [];
    private readonly Lock _lock = new();

    /// <summary>Claims the socket for one connection; false when another connection holds it. Inode 0 (no socket the
    /// kernel still names) is never held.</summary>
    public bool TryClaim(ulong inode, IPEndPoint client, IPEndPoint destination)
    {
        if (inode == 0)
        {
            return true;
        }

        var socket = ClientSocket.Of(inode, client, destination);
        lock (_lock)
        {
            return _claimed.Add(socket);
        }
    }

    /// <summary>Gives back what <see cref="TryClaim"/> took, once the connection is over (or refused after all).</summary>
    public void Release(ulong inode, IPEndPoint client, IPEndPoint destination)
    {
        if (inode == 0)
        {
            return;
        }

        var socket = ClientSocket.Of(inode, client, destination);
        lock (_lock)
        {
            _claimed.Remove(socket);
        }
    }

    /// <summary>Sockets held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _claimed.Count;
            }
        }
    }

    // Addresses unmapped: a dual-stack listener shows ::ffff:a.b.c.d where conntrack says a.b.c.d.
    private readonly record struct ClientSocket(ulong Inode, IPEndPoint Client, IPEndPoint Destination)
    {
        public static ClientSocket Of(ulong inode, IPEndPoint client, IPEndPoint destination) =>
            new(inode, MappedAddress.Unmap(client), MappedAddress.Unmap(destination));
    }
}
