using System.Security.Cryptography;
using System.Text;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Metrics.BearerTokenFile: the token every scrape must send as <c>Authorization: Bearer TOKEN</c>. The kernel lets root
/// and Metrics.ScraperUsers reach the endpoint, every process of theirs alike; a process of those users that fetches URLs
/// for others (an exporter's <c>/probe</c>, a fetcher that follows a customer's redirect) has no token, so with one set
/// it reads nothing. Prometheus sends it with <c>authorization: { credentials_file: … }</c>.
/// </summary>
public sealed class MetricsToken
{
    /// <summary>A token is a line; a larger file is the wrong one.</summary>
    public const int MaxBytes = 4096;

    /// <summary>Shorter than this, a token could be guessed by a local user trying, at the endpoint's pace.</summary>
    public const int MinLength = 16;

    private readonly byte[] _expected;

    private MetricsToken(string token) => _expected = Encoding.ASCII.GetBytes("Bearer " + token);

    /// <summary>The token of Metrics.BearerTokenFile, null when unset.</summary>
    /// <exception cref="ConfigurationException">The file is missing, loose, empty, or not one token (the message names the key, never the token).</exception>
    public static MetricsToken? Load(MetricsOptions metrics) => Load(metrics, UserDatabase.EffectiveUid);

    /// <inheritdoc cref="Load(MetricsOptions)"/>
    /// <param name="metrics">The options naming the file.</param>
    /// <param name="daemonUid">The user the daemon runs as, who must own the file (check-config --daemon-user).</param>
    public static MetricsToken? Load(MetricsOptions metrics, uint daemonUid)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var path = metrics.BearerTokenFile;
        if (path.Length == 0)
        {
            return null;
        }

        string text;
        try
        {
            text = PrivateFile.ReadAllText(path, daemonUid, "Metrics.BearerTokenFile", "the metrics endpoint's token", "a token file", MaxBytes);
        }
        catch (PrivateFileException e)
        {
            throw new ConfigurationException([$"Metrics.BearerTokenFile: {e.Message}"]);
        }

        // One line; a trailing newline (echo, an editor) is not part of it.
        var token = text.TrimEnd('\n', '\r');
        var problem = token.Length == 0 ? "is empty"
            : !token.All(IsToken68) ? "holds something other than one token (one line of letters, digits and -._~+/=)"
            : token.Length < MinLength ? $"holds a token of {token.Length} characters; use at least {MinLength} (e.g. openssl rand -hex 32)"
            : null;
        return problem is null ? new MetricsToken(token) : throw new ConfigurationException([$"Metrics.BearerTokenFile: {path}: {problem}"]);
    }

    /// <summary>
    /// Whether a request's Authorization headers are exactly the token: one header, compared in time that does not
    /// depend on where it differs.
    /// </summary>
    public bool Admits(StringValues authorization) =>
        authorization.Count == 1 && authorization[0] is { } value && value.Length == _expected.Length
        && value.All(char.IsAscii) && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(value), _expected);

    public override string ToString() => "the metrics endpoint's token (redacted)";

    /// <summary>
    /// Answers a request without the token <c>401</c> before the exporter sees it, and says so in the log with the
    /// connection's owner (at most one line per <paramref name="report"/>'s interval).
    /// </summary>
    internal RequestDelegate Guard(RequestDelegate next, ILogger logger, LogThrottle report) => context =>
    {
        if (Admits(context.Request.Headers.Authorization))
        {
            return next(context);
        }

        if (report.TryReport(out var count, out var span))
        {
            var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
            var owner = items is not null && items.TryGetValue(SharedAcceptLoopTransport.SlotKey, out var slot) ? (slot as PeerSlots.Slot)?.Owner : null;
            logger.TokenMissing(owner is { } uid ? UserDatabase.Describe(uid) : "an owner not found", count, span.TotalSeconds, AcceptLoop.ReportInterval.TotalSeconds);
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer realm=\"smtp-interceptor\"";
        return Task.CompletedTask;
    };

    // RFC 6750's b64token: what a Bearer credential may be, so the file cannot hold a header of its own.
    private static bool IsToken68(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~' or '+' or '/' or '=';
}
