using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Smtp.Upstream;

/// <summary>Who answered a MAIL sent through a lease.</summary>
public enum MailAnswer
{
    /// <summary>The upstream's own reply to MAIL.</summary>
    Upstream,

    /// <summary>No session: the upstream refused to open one (its greeting or EHLO reply).</summary>
    SessionRefused,

    /// <summary>Our refusal: the client asked for something this upstream cannot honour (8BITMIME, SMTPUTF8, unknown parameter).</summary>
    Unsupported,
}

/// <summary>
/// The reply to a MAIL sent through a lease. <paramref name="RetriedAfter"/> is set when a reused session turned out dead
/// at that MAIL and it went again on a new connection: why the reused one failed.
/// </summary>
public readonly record struct UpstreamMailResult(SmtpReply Reply, MailAnswer Answer, string? RetriedAfter = null);

/// <summary>
/// One inbound session's hold on an upstream: typed operations on the session it currently holds, which it opens on
/// first use and again after one broke. It hides where sessions come from (<see cref="IUpstreamRoute"/>), their reuse,
/// and the transparent retry of a reused session the upstream closed while it sat idle. Disposing gives the session
/// back (reset first when a message was half sent). One caller at a time, as SMTP's lock-step gives.
/// </summary>
public sealed class UpstreamLease(IUpstreamRoute route) : IAsyncDisposable
{
    private UpstreamConnection? _connection;
    private UpstreamCapabilities _capabilities = UpstreamCapabilities.Basic;

    // Handed out reused and nothing sent on it since: its first command may find it closed by the upstream.
    private bool _unproven;

    /// <summary>The upstream as replies and logs name it ("192.0.2.1:25").</summary>
    public string Name => route.Name;

    /// <summary>The session's endpoint as events record it ("192.0.2.1:25 (TLS)"); the name before one opened.</summary>
    public string Description => _connection?.Description ?? route.Name;

    /// <summary>The pool relay of the held session (<c>relay=NAME</c> in the trace header and log line); null for a direct one.</summary>
    public string? Relay => _connection?.Relay;

    /// <summary>What the last session opened advertised (basic before one opened).</summary>
    public UpstreamCapabilities Capabilities => _capabilities;

    /// <summary>The held session's state; <see cref="UpstreamState.Closed"/> when none is held.</summary>
    public UpstreamState State => _connection?.State ?? UpstreamState.Closed;

    public bool IsUsable => _connection is { IsUsable: true };

    /// <summary>
    /// Makes sure a session is held: null when one is ready, else the upstream's refusal to open one. Every network fault
    /// while opening is an <see cref="UpstreamUnavailableException"/> (the caller tells opening from commands apart).
    /// </summary>
    public Task<SmtpReply?> ConnectAsync(CancellationToken cancellationToken) => OpenAsync(fresh: false, cancellationToken);

    /// <summary>
    /// MAIL, rendered for the held session's capabilities. A reused session found dead here (421 or a lost connection)
    /// started nothing: the MAIL goes again, once, on a new connection, and the client sees only that second reply.
    /// Opening faults throw <see cref="UpstreamUnavailableException"/>; command faults other <see cref="UpstreamException"/>s.
    /// </summary>
    public async Task<UpstreamMailResult> MailAsync(EnvelopeCommand mail, CancellationToken cancellationToken)
    {
        string? retriedAfter = null;
        while (true)
        {
            var refusal = await OpenAsync(fresh: retriedAfter is not null, cancellationToken);
            if (refusal is not null)
            {
                return new UpstreamMailResult(refusal, MailAnswer.SessionRefused, retriedAfter);
            }

            var (arguments, unsupported) = UpstreamMailCommand.Render(mail, Capabilities, Name);
            if (unsupported is not null)
            {
                return new UpstreamMailResult(unsupported, MailAnswer.Unsupported, retriedAfter);
            }

            var unproven = _unproven;
            var connection = Proven();
            try
            {
                var reply = await connection.MailAsync(arguments!, cancellationToken);
                if (!unproven || reply.Code != 421)
                {
                    return new UpstreamMailResult(reply, MailAnswer.Upstream, retriedAfter);
                }

                retriedAfter = reply.ToString();
            }
            catch (UpstreamException e) when (unproven)
            {
                retriedAfter = e.Message;
            }
        }
    }

    public Task<SmtpReply> RcptAsync(string forwardPath, CancellationToken cancellationToken) => Proven().RcptAsync(forwardPath, cancellationToken);

    public Task<SmtpReply> DataAsync(CancellationToken cancellationToken) => Proven().DataAsync(cancellationToken);

    public Task WriteDataAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => Proven().WriteDataAsync(data, cancellationToken);

    public Task<SmtpReply> FinishDataAsync(ReadOnlyMemory<byte> lastBytesAndEndOfData, CancellationToken cancellationToken) =>
        Proven().FinishDataAsync(lastBytesAndEndOfData, cancellationToken);

    /// <summary>RSET on the held session; null when none is usable (nothing to reset).</summary>
    public async Task<SmtpReply?> RsetAsync(CancellationToken cancellationToken) =>
        _connection is { IsUsable: true } ? await Proven().RsetAsync(cancellationToken) : null;

    /// <summary>True while a session is held between transactions: one <see cref="ReleaseIdleAsync"/> may give back.</summary>
    public bool HoldsIdleSession => _connection is { State: UpstreamState.Ready };

    /// <summary>
    /// Gives a session held between transactions back to its route (kept for another client when healthy, else ended
    /// with QUIT), while the lease stays usable: the next MAIL takes one again. Nothing happens when none is held or a
    /// transaction is open on it. Never concurrently with another operation on this lease.
    /// </summary>
    /// <returns>The session's endpoint when one was given back, else null.</returns>
    public async Task<string?> ReleaseIdleAsync()
    {
        if (_connection is not { State: UpstreamState.Ready } held)
        {
            return null;
        }

        var description = held.Description;
        await ReleaseHeldAsync();
        return description;
    }

    /// <summary>Drops the held session without QUIT: an unfinished DATA is then discarded by the upstream.</summary>
    public void Abort() => _connection?.Abort();

    /// <summary>
    /// Gives the session back to its route (kept for another client when healthy, else closed). A message half sent is
    /// never ended with QUIT, which would become a body line: the connection is dropped so the upstream discards it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_connection is { State: UpstreamState.InData })
        {
            _connection.Abort();
        }

        await ReleaseHeldAsync();
    }

    private async Task<SmtpReply?> OpenAsync(bool fresh, CancellationToken cancellationToken)
    {
        if (!fresh && _connection is { IsUsable: true })
        {
            return null;
        }

        await ReleaseHeldAsync();
        UpstreamHandOut handOut;
        try
        {
            handOut = await route.TakeAsync(fresh, cancellationToken);
        }
        catch (UpstreamException e) when (e is not UpstreamUnavailableException)
        {
            throw new UpstreamUnavailableException(e.Message, e);
        }

        _connection = handOut.Connection;
        _capabilities = handOut.Connection?.Capabilities ?? _capabilities;
        _unproven = handOut.Reused;
        return handOut.Refusal;
    }

    /// <summary>The held session, from now on no longer unproven (the caller sends on it).</summary>
    private UpstreamConnection Proven()
    {
        _unproven = false;
        return _connection ?? throw new UpstreamConnectionLostException($"no session with {route.Name} is open");
    }

    private async Task ReleaseHeldAsync()
    {
        if (_connection is { } held)
        {
            _connection = null;
            await route.GiveBackAsync(held);
        }
    }
}
