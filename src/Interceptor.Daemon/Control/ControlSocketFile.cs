using System.Net.Sockets;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Control;

/// <summary>
/// The control socket's file: its directory, its mode and group, and the clean-up of a socket a crashed daemon
/// left behind. The daemon runs as root, so it must never delete or chown anything that is not its own socket.
/// </summary>
internal static class ControlSocketFile
{
    /// <summary>rwxr-x---: root and the admin group may reach the socket, nobody else even sees it.</summary>
    public const UnixFileMode DirectoryMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;

    /// <summary>rw-rw----: connecting needs write permission, so only root and the admin group may connect.</summary>
    public const UnixFileMode SocketMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Creates the directory when missing (0750, group = the admin group), removes a stale socket, binds, sets the
    /// socket's mode and group and only then listens: until listen() every connect is refused, so nobody can slip in
    /// while the file still has the umask's mode.
    /// </summary>
    /// <exception cref="ControlSocketException">Something is in the way (a file that is not a socket, a live daemon), or a system call failed.</exception>
    public static Socket Bind(string path, uint? adminGid, ILogger logger)
    {
        var directory = Path.GetDirectoryName(path) ?? throw new ControlSocketException($"Control.SocketPath {path} has no directory");
        Socket? socket = null;
        try
        {
            if (!Directory.Exists(directory))
            {
                Directory.CreateDirectory(directory, DirectoryMode);

                // CreateDirectory's mode passes through the umask; set it exactly.
                File.SetUnixFileMode(directory, DirectoryMode);
                if (adminGid is { } dirGid)
                {
                    UnixGroups.SetGroup(directory, dirGid);
                }
            }

            RemoveStale(path, logger);
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, SocketMode);
            if (adminGid is { } gid)
            {
                UnixGroups.SetGroup(path, gid);
            }

            socket.Listen(16);
            return socket;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException or LinuxInteropException)
        {
            socket?.Dispose();
            throw new ControlSocketException($"cannot create the control socket {path}: {e.Message}", e);
        }
        catch
        {
            socket?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A socket nobody listens on is what a crashed daemon leaves; it is removed. A live one means another daemon
    /// runs with the same configuration, and anything else at the path is not ours to delete.
    /// </summary>
    private static void RemoveStale(string path, ILogger logger)
    {
        var existing = PathIdentity.Of(path);
        if (existing is null)
        {
            return;
        }

        if (!existing.Value.IsSocket)
        {
            throw new ControlSocketException($"Control.SocketPath {path} exists and is not a socket; move it away or configure another path");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var timeout = new CancellationTokenSource(ProbeTimeout);
        try
        {
            probe.ConnectAsync(new UnixDomainSocketEndPoint(path), timeout.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            File.Delete(path);
            logger.StaleSocketRemoved(path);
            return;
        }
        catch (OperationCanceledException)
        {
            // A listener whose backlog is full is still a listener.
        }

        throw new ControlSocketException($"another process is already listening on the control socket {path}: is smtp-interceptor already running with this configuration?");
    }
}
