using System.Globalization;
using Interceptor.Core.Options;

namespace Interceptor.Core.Net;

/// <summary>
/// Where a content scanner listens: a TCP host and port, or a Unix socket path (<c>Scan.Endpoint</c>). Parsed once, by the
/// validator (which names the problem) and by the daemon (which then cannot fail).
/// </summary>
public sealed record ScanEndpoint(string? Host, int Port, string? UnixPath)
{
    public const string UnixPrefix = "unix:";

    public bool IsUnix => UnixPath is not null;

    /// <summary>The engine's usual local address, for an empty <c>Scan.Endpoint</c>.</summary>
    public static ScanEndpoint DefaultFor(ScanEngine engine) => engine == ScanEngine.Rspamd ? new("127.0.0.1", 11333, null) : new("127.0.0.1", 783, null);

    /// <summary>"unix:/path", "host:port", "[v6]:port", and for rspamd also "http://host:port"; null with the problem otherwise.</summary>
    public static ScanEndpoint? Parse(ScanEngine engine, string text, out string? problem)
    {
        problem = null;
        if (text.Length == 0)
        {
            return DefaultFor(engine);
        }

        if (text.StartsWith(UnixPrefix, StringComparison.Ordinal))
        {
            var path = text[UnixPrefix.Length..];
            if (Path.IsPathRooted(path) && !path.Contains('\0', StringComparison.Ordinal))
            {
                return new(null, 0, path);
            }

            problem = $"\"{text}\": a Unix socket is unix:/absolute/path";
            return null;
        }

        var hostPort = text;
        if (engine == ScanEngine.Rspamd && hostPort.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            hostPort = hostPort["http://".Length..].TrimEnd('/');
        }

        var colon = hostPort.LastIndexOf(':');
        var host = colon > 0 ? hostPort[..colon] : "";
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        if (colon > 0 && host.Length > 0 && !host.Contains('/', StringComparison.Ordinal)
            && int.TryParse(hostPort[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535)
        {
            return new(host, port, null);
        }

        problem = engine == ScanEngine.Rspamd
            ? $"\"{text}\" is not http://host:port, host:port or unix:/path"
            : $"\"{text}\" is not host:port ([v6]:port) or unix:/path";
        return null;
    }

    public override string ToString() => IsUnix ? UnixPrefix + UnixPath : Host!.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
