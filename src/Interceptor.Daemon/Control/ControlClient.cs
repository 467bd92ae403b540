using System.Net.Sockets;
using System.Text.Json;

namespace Interceptor.Daemon.Control;

/// <summary>The control socket could not be used (daemon not running, permission denied, no answer); exit code 3.</summary>
public sealed class ControlClientException : Exception
{
    public ControlClientException()
    {
    }

    public ControlClientException(string message)
        : base(message)
    {
    }

    public ControlClientException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The CLI's side of the control socket: one request line out, one response line back.</summary>
public static class ControlClient
{
    /// <summary>A `log --limit 10000` answer is a few MB; anything far beyond is not our daemon talking.</summary>
    public const int MaxResponseBytes = 64 * 1024 * 1024;

    /// <summary>Sends <paramref name="request"/> and returns the daemon's response, whether it says ok or not.</summary>
    /// <param name="adminGroup">Control.AdminGroup, to word a refusal by the socket file's permissions.</param>
    /// <exception cref="ControlClientException">Not running, not permitted, or no valid answer in time; the message says which.</exception>
    public static async Task<ControlResponse> SendAsync(string socketPath, string adminGroup, ControlRequest request, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var deadline = new CancellationTokenSource(timeout);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), deadline.Token);
        }
        catch (SocketException e)
        {
            throw new ControlClientException(ConnectFailure(e.SocketErrorCode, socketPath, adminGroup, e.Message), e);
        }
        catch (OperationCanceledException e)
        {
            throw new ControlClientException($"the daemon did not accept a connection on {socketPath} within {timeout.TotalSeconds:0} s", e);
        }

        byte[]? line;
        try
        {
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await stream.WriteAsync((byte[])[.. JsonSerializer.SerializeToUtf8Bytes(request, ControlJson.Strict), (byte)'\n'], deadline.Token);
            line = await ControlServer.ReadLineAsync(stream, MaxResponseBytes, deadline.Token);
        }
        catch (OperationCanceledException e)
        {
            throw new ControlClientException($"no answer from the daemon on {socketPath} within {timeout.TotalSeconds:0} s", e);
        }
        catch (Exception e) when (e is IOException or SocketException or ControlException)
        {
            throw new ControlClientException($"the connection to the daemon on {socketPath} failed: {e.Message}", e);
        }

        if (line is null)
        {
            throw new ControlClientException($"the daemon closed {socketPath} without answering (see its log)");
        }

        try
        {
            return JsonSerializer.Deserialize<ControlResponse>(line, ControlJson.Options)
                ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new ControlClientException($"the answer on {socketPath} is not a control response: {e.Message}", e);
        }
    }

    /// <summary>What a failed connect means for the admin, with what to do about it.</summary>
    internal static string ConnectFailure(SocketError error, string socketPath, string adminGroup, string detail) => error switch
    {
        // .NET reports ENOENT on a Unix socket path as AddressNotAvailable.
        SocketError.AddressNotAvailable => $"the daemon is not running: there is no control socket {socketPath} (start it, e.g. `systemctl start smtp-interceptor`, or check Control.SocketPath)",
        SocketError.ConnectionRefused => $"the daemon is not running: nothing listens on the control socket {socketPath} (a stale file left by a stopped daemon)",
        SocketError.AccessDenied => $"{PeerAuthorization.DenialFor(adminGroup)} ({socketPath})",
        _ => $"cannot connect to the control socket {socketPath}: {detail}",
    };
}
