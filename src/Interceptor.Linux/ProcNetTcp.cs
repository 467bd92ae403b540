using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Core.Net;

namespace Interceptor.Linux;

/// <summary>
/// Finds a socket's owner in the text of /proc/net/tcp or /proc/net/tcp6. The slow fallback
/// for hosts that refuse netlink sockets: the kernel prints every socket, so one lookup costs
/// tens of milliseconds on a busy server.
/// </summary>
/// <remarks>
/// Row format (columns split on spaces):
/// <c>sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...</c>.
/// Addresses are the raw in-memory words printed with %08X, so they read in host order:
/// 127.0.0.1 is <c>0100007F</c> on little-endian, and an IPv6 address is four such words.
/// Ports are already in host order (<c>0019</c> is 25).
/// </remarks>
internal static class ProcNetTcp
{
    public const string Ipv4Path = "/proc/net/tcp";
    public const string Ipv6Path = "/proc/net/tcp6";

    private const int LocalColumn = 1;
    private const int RemoteColumn = 2;
    private const int StateColumn = 3;
    private const int UidColumn = 7;
    private const int InodeColumn = 9;

    /// <summary>
    /// Returns the uid and inode of the connected row (<see cref="SockDiagMessage.IsConnected"/>) whose
    /// local address is <paramref name="local"/> and remote address <paramref name="remote"/>, or null.
    /// IPv4-mapped IPv6 addresses compare equal to their IPv4 form, so a dual-stack client socket listed
    /// in tcp6 is found for an IPv4 query. Rows in any other state (LISTEN, TIME_WAIT, ...) are never
    /// answers, as in the sock_diag lookup.
    /// </summary>
    public static SocketOwner? FindOwner(string fileContent, IPEndPoint local, IPEndPoint remote)
    {
        var wantedLocal = MappedAddress.Unmap(local);
        var wantedRemote = MappedAddress.Unmap(remote);
        Span<Range> columns = stackalloc Range[InodeColumn + 2];
        SocketOwner? unowned = null;

        foreach (var line in fileContent.AsSpan().EnumerateLines())
        {
            var count = SplitOnSpaces(line, columns);
            if (count <= InodeColumn)
            {
                continue; // the header, an empty line, or something we cannot read
            }

            if (!byte.TryParse(line[columns[StateColumn]], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var state)
                || !SockDiagMessage.IsConnected((TcpState)state))
            {
                continue;
            }

            if (!TryParseEndPoint(line[columns[LocalColumn]], out var rowLocal)
                || !TryParseEndPoint(line[columns[RemoteColumn]], out var rowRemote))
            {
                continue;
            }

            if (!MappedAddress.Unmap(rowLocal).Equals(wantedLocal) || !MappedAddress.Unmap(rowRemote).Equals(wantedRemote))
            {
                continue;
            }

            // An orphaned row (closed by its process: inode 0) is reported only if no row a process
            // still holds has the tuple; the caller refuses inode 0.
            if (uint.TryParse(line[columns[UidColumn]], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
                && ulong.TryParse(line[columns[InodeColumn]], NumberStyles.None, CultureInfo.InvariantCulture, out var inode))
            {
                if (inode != 0)
                {
                    return new SocketOwner(uid, inode);
                }

                unowned ??= new SocketOwner(uid, inode);
            }
        }

        return unowned;
    }

    /// <summary>Parses <c>0100007F:0019</c> or a 32-hex-digit IPv6 form with a port.</summary>
    internal static bool TryParseEndPoint(ReadOnlySpan<char> text, out IPEndPoint endPoint)
    {
        endPoint = null!;
        var colon = text.IndexOf(':');
        if (colon < 0
            || !ushort.TryParse(text[(colon + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var port))
        {
            return false;
        }

        var hex = text[..colon];
        if (hex.Length is not (8 or 32))
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        for (var word = 0; word < hex.Length / 8; word++)
        {
            if (!uint.TryParse(hex.Slice(word * 8, 8), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            // The kernel printed the word as this CPU reads it from memory; writing it back in
            // native order restores the original network-order bytes.
            MemoryMarshal.Write(bytes[(word * 4)..], in value);
        }

        var address = new IPAddress(bytes[..(hex.Length / 2)]);
        endPoint = new IPEndPoint(address, port);
        return true;
    }

    private static int SplitOnSpaces(ReadOnlySpan<char> line, Span<Range> columns)
    {
        var count = 0;
        var i = 0;
        while (i < line.Length && count < columns.Length)
        {
            while (i < line.Length && line[i] == ' ')
            {
                i++;
            }

            var start = i;
            while (i < line.Length && line[i] != ' ')
            {
                i++;
            }

            if (i > start)
            {
                columns[count++] = new Range(start, i);
            }
        }

        return count;
    }
}
