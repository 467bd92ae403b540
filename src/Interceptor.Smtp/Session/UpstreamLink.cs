using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>How a MAIL relayed through <see cref="UpstreamLink.MailAsync"/> ended.</summary>
internal enum MailRelayed
{
    /// <summary>The upstream answered MAIL (positively or not): its reply is the client's.</summary>
    Answered,

    /// <summary>No upstream session could be opened: the reply is the refusal or our 4xx.</summary>
    Unavailable,

    /// <summary>We refused a MAIL parameter the upstream cannot honour; nothing was sent.</summary>
    ParameterRefused,
}

/// <summary>
/// The session's upstream: opened before the greeting (and reopened when broken), commands relayed one at a time with
/// network faults turned into 4xx replies, and released at the end of the session (to the cache, or with QUIT).
/// </summary>
internal sealed class UpstreamLink(ConnectionOrigin origin, UpstreamSettings settings, UpstreamConnectionCache? cache, ITransactionRecorder recorder, ILogger logger)
    : IAsyncDisposable
{
    private UpstreamConnection? _connection;

    /// <summary>The original destination, as logs and events name it.</summary>
    public string Name { get; } = UpstreamConnection.Format(origin.OriginalDestination);

    /// <summary>What the upstream offered in its EHLO reply (basic until a session is open).</summary>
    public UpstreamCapabilities Capabilities { get; private set; } = UpstreamCapabilities.Basic;

    /// <summary>The open session, for DATA; null before one was opened.</summary>
    public UpstreamConnection? Connection => _connection;

    /// <summary>Where the transaction went, for its event: the endpoint, and "(TLS)" when the session was encrypted.</summary>
    public string ConnectedTo => _connection is null ? Name : UpstreamConnection.Format(_connection.Endpoint) + (_connection.IsTls ? " (TLS)" : "");

    /// <summary>Opens (or reopens) the upstream session; null when it is ready, else the reply for the client.</summary>
    public async Task<SmtpReply?> EnsureAsync(CancellationToken token)
    {
        if (_connection is { IsUsable: true })
        {
            return null;
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
            _connection = null;
        }

        try
        {
            var (connection, refusal) = cache is null
                ? await UpstreamConnection.OpenAsync(origin.OriginalDestination, settings, token)
                : await cache.OpenAsync(origin.OriginalDestination, token);
            if (connection is null)
            {
                SessionLog.UpstreamRefusedSession(logger, Name, origin.Uid, origin.User, refusal!.ToString());
                return refusal;
            }

            _connection = connection;
            Capabilities = connection.Capabilities;
            return null;
        }
        catch (UpstreamException e)
        {
            recorder.UpstreamFailed("connect");
            SessionLog.UpstreamUnavailable(logger, Name, origin.Uid, origin.User, e.Message);
            return new SmtpReply(421, "4.4.1", $"upstream {Name} unavailable: {e.Message}; try again later");
        }
    }

    /// <summary>
    /// Relays MAIL, built by <paramref name="build"/> for the upstream's capabilities. A session taken from the cache may
    /// have been closed by the upstream while idle (or have reached its per-connection limit, which it says with 421):
    /// MAIL has started nothing yet, so it is repeated once on a new session.
    /// </summary>
    public async Task<(MailRelayed How, SmtpReply Reply)> MailAsync(Func<UpstreamCapabilities, (string? Line, SmtpReply? Refusal)> build, CancellationToken token)
    {
        for (var attempt = 1; ; attempt++)
        {
            if (await EnsureAsync(token) is { } unavailable)
            {
                return (MailRelayed.Unavailable, unavailable);
            }

            var (line, refusal) = build(_connection!.Capabilities);
            if (refusal is not null)
            {
                return (MailRelayed.ParameterRefused, refusal);
            }

            var unproven = _connection.UnprovenSinceCached;
            var reply = await SendAsync(line!, token, quietly: unproven);
            if (!unproven || _connection.IsUsable || attempt > 1)
            {
                return (MailRelayed.Answered, reply);
            }

            SessionLog.CachedUpstreamClosed(logger, Name, origin.Uid, origin.User);
        }
    }

    /// <summary>Sends one command upstream; a network fault becomes a 4xx for the client and ends the upstream session.</summary>
    public async Task<SmtpReply> SendAsync(string command, CancellationToken token, bool quietly = false)
    {
        try
        {
            return await _connection!.SendAsync(command, token);
        }
        catch (UpstreamException e)
        {
            if (!quietly)
            {
                recorder.UpstreamFailed("command");
            }

            SessionLog.UpstreamFailed(logger, quietly ? LogLevel.Debug : LogLevel.Warning, Name, origin.Uid, origin.User, e.Message);
            return new SmtpReply(451, "4.4.2", $"upstream {Name}: {e.Message}; try again later");
        }
    }

    /// <summary>Relays RSET when an upstream session is open; a broken upstream is simply dropped. Null when none answered.</summary>
    public async Task<SmtpReply?> ResetAsync(CancellationToken token)
    {
        if (_connection is not { IsUsable: true })
        {
            return null;
        }

        try
        {
            return await _connection.SendAsync("RSET", token);
        }
        catch (UpstreamException e)
        {
            SessionLog.UpstreamResetFailed(logger, Name, origin.Uid, origin.User, e.Message);
            return null;
        }
    }

    /// <summary>
    /// The session is over: a healthy upstream is kept for the next client to the same destination, else ended with QUIT.
    /// One aborted mid-DATA is unusable by then, so neither writes into its open DATA.
    /// </summary>
    public async Task ReleaseAsync()
    {
        var connection = _connection;
        if (connection is null)
        {
            return;
        }

        if (cache is not null)
        {
            _connection = null;
            await cache.ReleaseAsync(connection);
        }
        else
        {
            await connection.QuitAsync(CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }
    }
}
