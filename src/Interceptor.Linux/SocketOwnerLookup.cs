using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Net;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// Finds the Unix user that owns the client end of a redirected TCP connection, by the exact
/// 4-tuple: the client endpoint (the accepted socket's remote endpoint) and the original
/// destination. Thread-safe; create one per process and share it.
/// </summary>
/// <remarks>
/// Netlink sockets are pooled: each lookup takes an idle one (or opens one), so concurrent
/// lookups never share a socket and can never read each other's replies, and an idle lookup
/// costs two system calls and no allocation beyond the request bookkeeping.
/// </remarks>
public sealed class SocketOwnerLookup : IDisposable
{
    private static readonly TimeSpan ReceiveTimeout = TimeSpan.FromSeconds(1);

    private readonly NetlinkSocketPool<SockDiagSocket> _pool;
    private bool _disposed;

    /// <summary>
    /// Opens the first netlink socket and checks that the kernel's TCP diagnostics answer; falls
    /// back to /proc/net/tcp when the netlink socket is refused (no AF_NETLINK support, or a
    /// sandbox that denies it) or tcp_diag is missing (every lookup would say "not found").
    /// </summary>
    public SocketOwnerLookup()
        : this(null)
    {
    }

    /// <summary>For tests: force a method instead of probing.</summary>
    internal SocketOwnerLookup(OwnerLookupMethod? forced)
    {
        _pool = new NetlinkSocketPool<SockDiagSocket>(Open, NetlinkSocketPool<SockDiagSocket>.PerConnectionIdle);
        Method = forced ?? Probe();
    }

    /// <summary>The method chosen at construction; logged by the daemon at start-up.</summary>
    public OwnerLookupMethod Method { get; }

    /// <summary>
    /// Returns the owner of the connected TCP socket whose local end is <paramref name="client"/> and
    /// remote end <paramref name="originalDestination"/>, exactly, or null when no process owns such a
    /// socket (the client already closed it, or the endpoints are not those of a redirected client
    /// socket). Whatever else the kernel answers (a listener on the client's port, a TIME_WAIT entry) is
    /// null too: its uid is someone else's, or nobody's.
    /// </summary>
    /// <exception cref="OwnerLookupException">The kernel could not be asked; fail closed.</exception>
    public SocketOwner? Find(IPEndPoint client, IPEndPoint originalDestination) => Find(client, originalDestination, out _);

    /// <summary>
    /// <see cref="Find(IPEndPoint, IPEndPoint)"/>, also telling whether the exact socket was there, connected, with no
    /// process holding it any more (<paramref name="orphaned"/>: inode 0, the client closed it and the kernel is
    /// finishing its FIN): its connection's client has left.
    /// </summary>
    /// <exception cref="OwnerLookupException">The kernel could not be asked; fail closed.</exception>
    public SocketOwner? Find(IPEndPoint client, IPEndPoint originalDestination, out bool orphaned)
    {
        orphaned = false;
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(originalDestination);

        var local = MappedAddress.Unmap(client);
        var remote = MappedAddress.Unmap(originalDestination);
        if (local.AddressFamily != remote.AddressFamily)
        {
            // A socket's two ends always share a family; such a pair cannot name a socket.
            return null;
        }

        var owner = Method == OwnerLookupMethod.SockDiag ? FindWithSockDiag(local, remote) : FindInProc(local, remote);
        orphaned = owner is { Inode: 0 };
        return IsOwned(owner) ? owner : null;
    }

    /// <summary>
    /// A socket no process holds any more (TIME_WAIT, or orphaned after close) reports inode 0,
    /// and TIME_WAIT entries report uid 0 as well: trusting that would attribute the connection
    /// to root. Treat it as unknown so the caller fails closed.
    /// </summary>
    internal static bool IsOwned(SocketOwner? owner) => owner is { Inode: not 0 };

    public void Dispose()
    {
        _disposed = true;
        _pool.Dispose();
    }

    private SocketOwner? FindWithSockDiag(IPEndPoint local, IPEndPoint remote)
    {
        var socket = _pool.Rent();
        try
        {
            return socket.Query(local, remote);
        }
        finally
        {
            _pool.Return(socket);
        }
    }

    private static SocketOwner? FindInProc(IPEndPoint local, IPEndPoint remote)
    {
        // A dual-stack (AF_INET6) client socket talking IPv4 is listed in tcp6 with mapped
        // addresses, so an IPv4 query looks there too.
        var owner = local.AddressFamily == AddressFamily.InterNetwork
            ? FindInFile(ProcNetTcp.Ipv4Path, local, remote) ?? FindInFile(ProcNetTcp.Ipv6Path, local, remote)
            : FindInFile(ProcNetTcp.Ipv6Path, local, remote);
        return owner;
    }

    private static SocketOwner? FindInFile(string path, IPEndPoint local, IPEndPoint remote)
    {
        string content;
        try
        {
            content = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return null; // no IPv6 in this kernel: no tcp6 sockets either
        }
        catch (IOException e)
        {
            throw new OwnerLookupException($"reading {path} failed: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new OwnerLookupException($"reading {path} failed: {e.Message}", e);
        }

        return ProcNetTcp.FindOwner(content, local, remote);
    }

    private static SockDiagSocket Open()
    {
        try
        {
            return SockDiagSocket.Open(ReceiveTimeout);
        }
        catch (LinuxInteropException e) when (e is not OwnerLookupException)
        {
            // Typically EMFILE under a connection flood; the caller fails this one connection.
            throw new OwnerLookupException($"opening a sock_diag socket failed: {e.Message}", e);
        }
    }

    private OwnerLookupMethod Probe()
    {
        SockDiagSocket socket;
        try
        {
            socket = SockDiagSocket.Open(ReceiveTimeout);
        }
        catch (LinuxInteropException e) when (IsNetlinkRefused(e.Errno))
        {
            return OwnerLookupMethod.ProcNetTcp;
        }

        try
        {
            if (!SockDiagSeesTcp(socket))
            {
                socket.Dispose();
                return OwnerLookupMethod.ProcNetTcp;
            }
        }
        catch (OwnerLookupException e) when (IsNetlinkRefused(e.Errno))
        {
            // Some sandboxes allow the socket but refuse the request itself.
            socket.Dispose();
            return OwnerLookupMethod.ProcNetTcp;
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _pool.Return(socket);
        return OwnerLookupMethod.SockDiag;
    }

    private static bool IsNetlinkRefused(int errno) =>
        errno == LibC.EAFNOSUPPORT || errno == LibC.EPROTONOSUPPORT || errno == LibC.EACCES || errno == LibC.EPERM;

    /// <summary>
    /// Looks up a loopback connection of our own. sock_diag answers ENOENT both for "no such
    /// socket" and for "no tcp_diag module", so without this check a host lacking tcp_diag would
    /// refuse every customer connection as "owner unknown". A connected pair, not a listener: a
    /// listener is never an acceptable answer (see <see cref="SockDiagMessage.IsTheSocketAskedFor"/>).
    /// </summary>
    private static bool SockDiagSeesTcp(SockDiagSocket socket)
    {
        try
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndPoint!);
            using var accepted = listener.Accept();
            return socket.Query((IPEndPoint)client.LocalEndPoint!, (IPEndPoint)client.RemoteEndPoint!) is not null;
        }
        catch (SocketException)
        {
            return true; // no loopback to test with; trust the socket we could open
        }
    }
}
