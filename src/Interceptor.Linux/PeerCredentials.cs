using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// Who is at the other end of a connected Unix socket, as the kernel recorded it when the peer called
/// connect() (SO_PEERCRED). The peer cannot forge it, unlike anything it writes into the socket.
/// </summary>
public readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    /// <summary>sizeof(struct ucred): pid_t pid; uid_t uid; gid_t gid.</summary>
    private const int UcredSize = 12;

    /// <summary>The credentials of the process that connected <paramref name="socket"/> (a Unix stream socket).</summary>
    /// <exception cref="LinuxInteropException">The kernel did not give them (not a Unix socket, or already closed).</exception>
    public static PeerCredentials Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Span<byte> ucred = stackalloc byte[UcredSize];
        int length;
        try
        {
            length = socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred);
        }
        catch (SocketException e)
        {
            throw new LinuxInteropException($"getsockopt(SO_PEERCRED) failed: {e.Message}", e);
        }

        if (length != UcredSize)
        {
            throw new LinuxInteropException($"getsockopt(SO_PEERCRED) returned {length} bytes instead of {UcredSize}");
        }

        // Native byte order: the struct comes straight from the kernel of this machine.
        return new PeerCredentials(
            MemoryMarshal.Read<int>(ucred),
            MemoryMarshal.Read<uint>(ucred[4..]),
            MemoryMarshal.Read<uint>(ucred[8..]));
    }
}
