namespace Interceptor.Daemon.Attribution;

/// <summary>
/// The client sockets (by inode) whose connections the daemon has attributed and still serves. One client socket is
/// at one end of one connection: a second connection whose exact owner lookup finds a claimed socket is not that
/// socket's, whatever its addresses say. That happens when NAT moves a redirected connection's client port onto the
/// local port of another live redirected socket to the same MX, one whose own port NAT had moved (so no reply tuple
/// holds it): the lookup's 4-tuple is then exactly that socket's. Such a connection is asked of conntrack instead.
/// </summary>
public sealed class ClientSocketClaims
{
    private readonly HashSet<ulong> _claimed = [];
    private readonly Lock _lock = new();

    /// <summary>Claims <paramref name="inode"/> for one connection; false when another connection holds it. Inode 0
    /// (no socket the kernel still names) is never held.</summary>
    public bool TryClaim(ulong inode)
    {
        if (inode == 0)
        {
            return true;
        }

        lock (_lock)
        {
            return _claimed.Add(inode);
        }
    }

    /// <summary>Gives back what <see cref="TryClaim"/> took, once the connection is over (or refused after all).</summary>
    public void Release(ulong inode)
    {
        if (inode == 0)
        {
            return;
        }

        lock (_lock)
        {
            _claimed.Remove(inode);
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
}
