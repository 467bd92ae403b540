using System.Diagnostics;
using System.Runtime.CompilerServices;
using Interceptor.Core.Replies;
using Interceptor.Core.Threading;
using Interceptor.Smtp.IO;
using Interceptor.Smtp.Protocol;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The one authority over a client connection's time (after Kestrel's TimeoutControl): it arms every wait on the
/// client, tells which limit ran out as a <see cref="TimeoutReason"/>, and gives each reason its reply and log line.
/// Whatever the I/O layer throws when a wait is cut is turned into a <see cref="SessionTimeoutException"/> here and
/// nowhere else.
/// </summary>
public sealed class SessionTimeouts : IDisposable
{
    private readonly TimeoutLimits _limits;
    private readonly CancellationTokenSource _session;
    private readonly OperationTimeout _write = new();
    private readonly ILogger _logger;
    private readonly ConnectionOrigin _origin;
    private long _dataStarted;

    public SessionTimeouts(TimeoutLimits limits, ILogger logger, ConnectionOrigin origin, CancellationToken shutdown)
    {
        _limits = limits;
        _logger = logger;
        _origin = origin;
        Shutdown = shutdown;
        _session = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        _session.CancelAfter(limits.Session);
    }

    public TimeoutLimits Limits => _limits;

    /// <summary>Cancelled when the session is too long or the daemon shuts down.</summary>
    public CancellationToken Token => _session.Token;

    /// <summary>The daemon's shutdown (cancelled only after the shutdown grace), without the session limit.</summary>
    public CancellationToken Shutdown { get; }

    /// <summary>
    /// The session's running time without a wait, across its command loop, its DATA loop and a spool's replay: each
    /// gives the thread up once it is spent (see <see cref="ThreadBudget"/>).
    /// </summary>
    public ThreadBudget Budget { get; } = ThreadBudget.ForSession();

    /// <summary>True once the session limit (not the shutdown) cancelled <see cref="Token"/>.</summary>
    public bool SessionExpired => _session.IsCancellationRequested && !Shutdown.IsCancellationRequested;

    /// <summary>Reads one command line: idle between lines, the line limit once a line has begun.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // as LineReader's reads
    public async ValueTask<Line> ReadCommandAsync(LineReader reader, int maxLength)
    {
        try
        {
            return await reader.ReadLineAsync(maxLength, _limits.Idle, Token, _limits.CommandLine);
        }
        catch (LineTimeoutException)
        {
            throw Expired(TimeoutReason.CommandLine);
        }
        catch (TimeoutException)
        {
            throw Expired(TimeoutReason.Idle);
        }
    }

    /// <summary>Reads more message bytes in DATA; false when the client closed the connection.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> ReadDataAsync(LineReader reader, CancellationToken token)
    {
        try
        {
            return await reader.FillAsync(_limits.Idle, token);
        }
        catch (TimeoutException)
        {
            throw Expired(TimeoutReason.Idle);
        }
    }

    /// <summary>Writes a reply; a client that does not take it within the idle time is not reading its replies.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(Stream client, ReadOnlyMemory<byte> reply, CancellationToken token)
    {
        using var timeout = _write.Start(_limits.Idle, token);
        try
        {
            await client.WriteAsync(reply, timeout.Token);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw Expired(TimeoutReason.RepliesNotRead);
        }
    }

    /// <summary>Starts the clock of the DATA rate.</summary>
    public void StartData() => _dataStarted = Stopwatch.GetTimestamp();

    /// <summary>The time since <see cref="StartData"/>.</summary>
    public TimeSpan DataElapsed => Stopwatch.GetElapsedTime(_dataStarted);

    /// <summary>
    /// True when DATA, after the grace period, has brought fewer than the minimum bytes per second: a trickle keeps an
    /// upstream session and our memory busy.
    /// </summary>
    public bool DataTooSlow(long received)
    {
        var elapsed = Stopwatch.GetElapsedTime(_dataStarted);
        return _limits.MinDataBytesPerSecond > 0 && elapsed > _limits.DataRateGrace && received < _limits.MinDataBytesPerSecond * elapsed.TotalSeconds;
    }

    /// <summary>Logs why the session ends and returns the 421 the client gets.</summary>
    public SmtpReply Expire(TimeoutReason reason)
    {
        var (uid, user) = (_origin.Uid, _origin.User);
        switch (reason)
        {
            case TimeoutReason.Idle:
                SessionLog.Idle(_logger, uid, user, _limits.Idle.TotalSeconds);
                return SessionReplies.IdleTimeout(_limits.Idle);
            case TimeoutReason.CommandLine:
                SessionLog.CommandLineTrickled(_logger, uid, user, _limits.CommandLine.TotalSeconds);
                return SessionReplies.CommandLineTimeout(_limits.CommandLine);
            case TimeoutReason.SlowData:
                SessionLog.DataTooSlow(_logger, uid, user, _limits.MinDataBytesPerSecond);
                return SessionReplies.DataTooSlow(_limits.MinDataBytesPerSecond);
            case TimeoutReason.RepliesNotRead:
                SessionLog.RepliesNotRead(_logger, uid, user, _limits.Idle.TotalSeconds);
                return SessionReplies.RepliesNotRead(_limits.Idle);
            case TimeoutReason.TlsHandshake:
                SessionLog.TlsHandshakeStalled(_logger, uid, user, _limits.CommandLine.TotalSeconds);
                return SessionReplies.TlsHandshakeTimeout(_limits.CommandLine);
            case TimeoutReason.SessionTooLong:
                SessionLog.SessionTooLong(_logger, uid, user, _limits.Session.TotalSeconds);
                return SessionReplies.SessionTooLong(_limits.Session);
            default:
                throw new ArgumentOutOfRangeException(nameof(reason), reason, "the upstream's silence does not end the client's session");
        }
    }

    private SessionTimeoutException Expired(TimeoutReason reason) => new(reason, _limits.For(reason));

    public void Dispose()
    {
        _write.Dispose();
        _session.Dispose();
    }
}
