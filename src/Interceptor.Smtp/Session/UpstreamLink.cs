using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>How a MAIL relayed through <see cref="UpstreamLink.MailAsync"/> ended.</summary>
internal enum MailRelayed
{
    /// <summary>The upstream answered MAIL (positively or not), or failed as a network peer: the reply is the client's.</summary>
    Answered,

    /// <summary>No upstream session could be opened: the reply is the upstream's refusal or our 4xx.</summary>
    Unavailable,

    /// <summary>We refused a MAIL parameter the upstream cannot honour; nothing was sent.</summary>
    ParameterRefused,
}

/// <summary>
/// The session's side of its <see cref="UpstreamLease"/>: every upstream failure becomes the reply the client gets, with
/// its log line and metric, so handlers deal in replies only. The lease does the rest (opening, reuse, the retry of a
/// dead reused session, dropping an unfinished DATA).
/// </summary>
internal sealed class UpstreamLink(UpstreamLease lease, ConnectionOrigin origin, ITransactionRecorder recorder, ILogger logger) : IAsyncDisposable
{
    /// <summary>The original destination, as logs and events name it.</summary>
    public string Name => lease.Name;

    /// <summary>What the upstream offered in its EHLO reply (basic until a session is open).</summary>
    public UpstreamCapabilities Capabilities => lease.Capabilities;

    /// <summary>Where the transaction went, for its event: the endpoint, and "(TLS)" when the session was encrypted.</summary>
    public string ConnectedTo => lease.Description;

    /// <summary>The pool relay of the held session; null when it goes direct.</summary>
    public string? Relay => lease.Relay;

    /// <summary>The lease itself, for the message bytes of DATA.</summary>
    public UpstreamLease Lease => lease;

    /// <summary>Opens the upstream session (before the greeting); null when it is ready, else the reply for the client.</summary>
    public async Task<SmtpReply?> EnsureAsync(CancellationToken token)
    {
        try
        {
            var refusal = await lease.ConnectAsync(token);
            return refusal is null ? null : SessionRefused(refusal);
        }
        catch (UpstreamException e)
        {
            return Unavailable(e);
        }
    }

    /// <summary>MAIL through the lease, which opens or reopens the session and retries once on a dead reused one.</summary>
    public async Task<(MailRelayed How, SmtpReply Reply)> MailAsync(EnvelopeCommand mail, CancellationToken token)
    {
        UpstreamMailResult result;
        try
        {
            result = await lease.MailAsync(mail, token);
        }
        catch (UpstreamUnavailableException e)
        {
            return (MailRelayed.Unavailable, Unavailable(e));
        }
        catch (UpstreamException e)
        {
            return (MailRelayed.Answered, CommandFailed(e));
        }

        if (result.RetriedAfter is { } deadReason)
        {
            SessionLog.UpstreamFailed(logger, LogLevel.Debug, Name, origin.Uid, origin.User, deadReason);
            SessionLog.CachedUpstreamClosed(logger, Name, origin.Uid, origin.User);
        }

        return result.Answer switch
        {
            MailAnswer.SessionRefused => (MailRelayed.Unavailable, SessionRefused(result.Reply)),
            MailAnswer.Unsupported => (MailRelayed.ParameterRefused, result.Reply),
            _ => (MailRelayed.Answered, result.Reply),
        };
    }

    public Task<SmtpReply> RcptAsync(string forwardPath, CancellationToken token) => RelayAsync((upstream, t) => upstream.RcptAsync(forwardPath, t), token);

    public Task<SmtpReply> DataAsync(CancellationToken token) => RelayAsync(static (upstream, t) => upstream.DataAsync(t), token);

    /// <summary>Relays RSET when an upstream session is open; a broken upstream is simply dropped. Null when none answered.</summary>
    public async Task<SmtpReply?> ResetAsync(CancellationToken token)
    {
        try
        {
            return await lease.RsetAsync(token);
        }
        catch (UpstreamException e)
        {
            SessionLog.UpstreamResetFailed(logger, Name, origin.Uid, origin.User, e.Message);
            return null;
        }
    }

    /// <summary>Gives the session back: kept for the next client when healthy, else ended; dropped inside an unfinished DATA.</summary>
    public ValueTask DisposeAsync() => lease.DisposeAsync();

    /// <summary>Runs one command upstream; a network fault (the upstream's silence included) becomes a 4xx for the client.</summary>
    private async Task<SmtpReply> RelayAsync(Func<UpstreamLease, CancellationToken, Task<SmtpReply>> command, CancellationToken token)
    {
        try
        {
            return await command(lease, token);
        }
        catch (UpstreamException e)
        {
            return CommandFailed(e);
        }
    }

    private SmtpReply SessionRefused(SmtpReply refusal)
    {
        SessionLog.UpstreamRefusedSession(logger, Name, origin.Uid, origin.User, refusal);
        return refusal;
    }

    private SmtpReply Unavailable(UpstreamException e)
    {
        recorder.UpstreamFailed("connect");
        SessionLog.UpstreamUnavailable(logger, Name, origin.Uid, origin.User, e.Message);

        // Our own lack of descriptors is a system condition here (4.3.2), not the upstream's silence (4.4.1).
        return e is UpstreamDescriptorsExhaustedException
            ? new SmtpReply(421, "4.3.2", $"this host's mail relay cannot open a connection to {Name} now: {e.Message}; try again later")
            : new SmtpReply(421, "4.4.1", $"upstream {Name} unavailable: {e.Message}; try again later");
    }

    private SmtpReply CommandFailed(UpstreamException e)
    {
        recorder.UpstreamFailed("command");
        SessionLog.UpstreamFailed(logger, LogLevel.Warning, Name, origin.Uid, origin.User, e.Message);
        return new SmtpReply(451, "4.4.2", $"upstream {Name}: {e.Message}; try again later");
    }
}
