using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Core.Replies;
using Interceptor.Smtp.IO;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The SMTP conversation with one redirected client, relayed in lock-step to its original destination:
/// every command that reaches the upstream is answered with the upstream's own reply, and DATA gets
/// 250 only after the upstream said 250. Nothing is queued here, so nothing acknowledged can be lost.
/// </summary>
public sealed partial class InboundSession : IAsyncDisposable
{
    private readonly Stream _client;
    private readonly OperationTimeout _writeTimeout = new();
    private readonly LineReader _reader;
    private readonly ConnectionOrigin _origin;
    private readonly InterceptorOptions _options;
    private readonly UpstreamSettings _upstreamSettings;
    private readonly UpstreamConnectionCache? _upstreams;
    private readonly ITransactionRecorder _recorder;
    private readonly ILogger _logger;
    private readonly MailPolicy? _policy;
    private readonly QuotaLimits _limits;
    private readonly TimeSpan _idle;
    private UpstreamConnection? _upstream;
    private UpstreamCapabilities _upstreamCapabilities = UpstreamCapabilities.Basic;
    private Transaction? _transaction;
    private bool _greeted;
    private bool _closing;
    private bool _relayingData;
    private int _errors;

    /// <summary>The daemon's shutdown (cancelled only after the shutdown grace), without the session timeout.</summary>
    private CancellationToken _shutdown;

    public InboundSession(
        Stream client,
        ConnectionOrigin origin,
        InterceptorOptions options,
        ITransactionRecorder recorder,
        ILogger logger,
        MailPolicy? policy = null,
        UpstreamConnectionCache? upstreams = null)
    {
        _policy = policy;
        _upstreams = upstreams;
        _client = client;
        _reader = new LineReader(client);
        _origin = origin;
        _options = options;
        _upstreamSettings = upstreams?.Settings ?? UpstreamSettings.From(options.Relay);
        _recorder = recorder;
        _logger = logger;
        _limits = options.Limits.For(origin.User);
        _idle = options.Smtp.IdleTimeout;
    }

    private string UpstreamName => UpstreamConnection.Format(_origin.OriginalDestination);

    private long MaxMessageSize => _limits.MessageSizeBytes ?? QuotaLimits.Defaults.MessageSizeBytes!.Value;

    private int MaxRecipients => _limits.RecipientsPerMessage ?? QuotaLimits.Defaults.RecipientsPerMessage!.Value;

    /// <summary>Greets a connection we will not serve with one reply and closes it (attribution failed, not redirected...).</summary>
    public static async Task RefuseAsync(Stream client, SmtpReply reply, TimeSpan timeout)
    {
        using var source = new CancellationTokenSource(timeout);
        try
        {
            await client.WriteAsync(Encoding.UTF8.GetBytes(reply.ToWire()), source.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client is gone or not reading; it is being refused anyway.
        }
    }

    /// <summary>Runs the session to its end. Never throws for anything the client or upstream does.</summary>
    public async Task RunAsync(CancellationToken shutdown)
    {
        _shutdown = shutdown;
        var sessionLimit = _options.Smtp.SessionTimeout;
        using var session = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        session.CancelAfter(sessionLimit);
        var token = session.Token;
        try
        {
            if (!await OpenUpstreamForGreetingAsync(token))
            {
                return;
            }

            if (ClientSentEarly())
            {
                // A real client waits for the greeting; spamware often does not (Postfix's pregreet test).
                await WriteAsync(new SmtpReply(554, "5.5.0", "Error: SMTP protocol synchronization: data sent before the greeting"), token);
                return;
            }

            await WriteAsync(new SmtpReply(220, null, $"{_options.Relay.HeloName} ESMTP"), token);
            var lineTimeout = _options.Smtp.CommandLineTimeout;
            while (!_closing)
            {
                var line = await _reader.ReadLineAsync(_options.Smtp.MaxCommandLine.ToInt32(), _idle, token, lineTimeout);
                if (!await PaceErrorsAsync(token))
                {
                    break;
                }

                await HandleLineAsync(line, token);
            }
        }
        catch (LineTimeoutException e)
        {
            await TryWriteAsync(new SmtpReply(421, "4.4.2", $"Error: command line not completed within {e.Limit.TotalSeconds:0} s; closing connection"));
            _logger.LogInformation("closing session uid={Uid} user={User}: a command line trickled for over {Seconds} s", _origin.Uid, _origin.User, e.Limit.TotalSeconds);
        }
        catch (TimeoutException)
        {
            await TryWriteAsync(SessionReplies.IdleTimeout(_idle));
            _logger.LogInformation("closing idle session uid={Uid} user={User} after {IdleSeconds} s without input", _origin.Uid, _origin.User, _idle.TotalSeconds);
        }
        catch (OperationCanceledException) when (!shutdown.IsCancellationRequested)
        {
            await TryWriteAsync(SessionReplies.SessionTooLong(sessionLimit));
            _logger.LogInformation("closing session uid={Uid} user={User}: longer than {LimitSeconds} s", _origin.Uid, _origin.User, sessionLimit.TotalSeconds);
        }
        catch (OperationCanceledException)
        {
            await TryWriteAsync(new SmtpReply(421, "4.3.2", "Service shutting down; try again later"));
        }
        catch (IOException e)
        {
            _logger.LogDebug("client uid={Uid} user={User} went away: {Reason}", _origin.Uid, _origin.User, e.Message);
        }
        finally
        {
            if (_transaction is not null)
            {
                await EndTransactionAsync("aborted: the client left before finishing the transaction", TransactionOutcome.Refused, UnsentKind.ClientLeft, CancellationToken.None);
            }

            if (_upstream is not null && _relayingData)
            {
                // Never QUIT into an unfinished DATA: it would become a body line. Dropping discards it.
                _upstream.Abort();
            }
            else if (_upstream is not null && _upstreams is not null)
            {
                // Kept for the next client to the same destination when healthy, else ended with QUIT.
                var upstream = _upstream;
                _upstream = null;
                await _upstreams.ReleaseAsync(upstream);
            }
            else if (_upstream is not null)
            {
                await _upstream.QuitAsync(CancellationToken.None);
            }
        }
    }

    /// <summary>True when the client has sent bytes we have not asked for yet.</summary>
    private bool ClientSentEarly() => _reader.HasBufferedData || _client is System.Net.Sockets.NetworkStream { DataAvailable: true };

    /// <summary>
    /// Error storms (junk commands, dictionary attacks on RCPT): past the soft limit every reply is delayed,
    /// past the hard limit the session ends, like Postfix's smtpd_soft/hard_error_limit. False to close.
    /// </summary>
    private async Task<bool> PaceErrorsAsync(CancellationToken token)
    {
        if (_errors >= _options.Smtp.HardErrorLimit)
        {
            await WriteAsync(new SmtpReply(421, "4.7.0", $"Error: too many errors ({_errors}); closing connection"), token);
            _logger.LogInformation("closing session uid={Uid} user={User}: {Errors} errors", _origin.Uid, _origin.User, _errors);
            return false;
        }

        if (_errors >= _options.Smtp.SoftErrorLimit)
        {
            await Task.Delay(_options.Smtp.ErrorDelay, token);
        }

        return true;
    }

    private async Task HandleLineAsync(Line line, CancellationToken token)
    {
        switch (line.Status)
        {
            case LineStatus.EndOfStream:
                _closing = true;
                return;
            case LineStatus.TooLong:
                await WriteAsync(SessionReplies.LineTooLong(_options.Smtp.MaxCommandLine.ToInt32()), token);
                return;
            case LineStatus.BareLineFeed:
                // What follows the bare LF could be a second, smuggled command: answer and hang up, as Postfix does.
                await WriteAsync(SessionReplies.BareLineFeed, token);
                _closing = true;
                return;
            case LineStatus.ForbiddenByte:
                await WriteAsync(SessionReplies.ForbiddenByte, token);
                return;
        }

        var command = CommandLine.Parse(line.Text);
        switch (command.Verb)
        {
            case "EHLO":
            case "HELO":
                await HelloAsync(command, token);
                break;
            case "MAIL":
                await MailAsync(command.Argument, token);
                break;
            case "RCPT":
                await RecipientAsync(command.Argument, token);
                break;
            case "DATA":
                await DataAsync(command.Argument, token);
                break;
            case "RSET":
                await ResetAsync(token);
                break;
            case "NOOP":
                await WriteAsync(SessionReplies.Ok, token);
                break;
            case "QUIT":
                await WriteAsync(SessionReplies.Bye, token);
                _closing = true;
                break;
            case "VRFY":
                await WriteAsync(SessionReplies.CannotVerify, token);
                break;
            case "HELP":
                await WriteAsync(SessionReplies.Help, token);
                break;
            case "STARTTLS":
                await WriteAsync(SessionReplies.StartTlsNotOffered, token);
                break;
            case "BDAT":
                await WriteAsync(SessionReplies.ChunkingNotOffered, token);
                break;
            case "AUTH":
                await WriteAsync(SessionReplies.AuthNotOffered, token);
                break;
            default:
                await WriteAsync(SessionReplies.UnknownCommand(command.Verb), token);
                break;
        }
    }

    private async Task HelloAsync(CommandLine command, CancellationToken token)
    {
        if (command.Argument.Length == 0)
        {
            await WriteAsync(SessionReplies.HeloNeedsArgument, token);
            return;
        }

        // RFC 5321 4.1.4: EHLO/HELO in a transaction resets it.
        if (_transaction is not null)
        {
            await ResetUpstreamAsync(token);
            await EndTransactionAsync("aborted: the client said HELO again", TransactionOutcome.Refused, UnsentKind.Reset, token);
            _errors++;
        }

        if (ClientSentEarly())
        {
            // RFC 2920: EHLO ends a pipelined group. Commands sent before its reply are spamware's hallmark
            // (Postfix: smtpd_forbid_unauth_pipelining). Refuse and hang up.
            await WriteAsync(new SmtpReply(554, "5.5.0", $"Error: improper command pipelining after {command.Verb}"), token);
            _closing = true;
            return;
        }

        _greeted = true;
        var hostName = _options.Relay.HeloName;
        if (command.Verb == "HELO")
        {
            await WriteAsync(new SmtpReply(250, null, hostName), token);
            return;
        }

        // Advertise what we can honour: what the upstream supports, bounded by this user's limits.
        var size = _upstreamCapabilities.MaxSize is { } upstreamMax ? Math.Min(upstreamMax, MaxMessageSize) : MaxMessageSize;
        var lines = new List<string> { hostName, "PIPELINING", $"SIZE {size}" };
        if (_upstreamCapabilities.EightBitMime)
        {
            lines.Add("8BITMIME");
        }

        if (_upstreamCapabilities.SmtpUtf8)
        {
            lines.Add("SMTPUTF8");
        }

        lines.Add("ENHANCEDSTATUSCODES");
        await WriteAsync(new SmtpReply(250, null, lines), token);
    }

    /// <summary>RSET reaches the upstream whenever a session is open, with or without our transaction:
    /// an upstream may keep its own transaction open after refusing DATA (Postfix does).</summary>
    private async Task ResetAsync(CancellationToken token)
    {
        var reply = await ResetUpstreamAsync(token);
        if (_transaction is { DataStarted: false })
        {
            // A transaction dropped before DATA relayed nothing: MAIL+RSET loops are an error storm (the session's error
            // limits), never a way to keep an upstream session and the accounting busy for free.
            _errors++;
        }

        await EndTransactionAsync("aborted: RSET", TransactionOutcome.Refused, UnsentKind.Reset, token);
        await WriteAsync(reply ?? SessionReplies.Ok, token);
    }

    /// <summary>Relays RSET when an upstream session is open; a broken upstream is simply dropped.</summary>
    private async Task<SmtpReply?> ResetUpstreamAsync(CancellationToken token)
    {
        if (_upstream is not { IsUsable: true })
        {
            return null;
        }

        try
        {
            return await _upstream.SendAsync("RSET", token);
        }
        catch (UpstreamException e)
        {
            _logger.LogInformation("upstream {Upstream} failed at RSET for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
            return null;
        }
    }

    private async Task WriteAsync(SmtpReply reply, CancellationToken token)
    {
        using var timeout = _writeTimeout.Start(_idle, token);
        try
        {
            await _client.WriteAsync(Encoding.UTF8.GetBytes(reply.ToWire()), timeout.Token);
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw new TimeoutException("the client does not read its replies");
        }

        if (reply.Code == 421)
        {
            _closing = true;
        }
        else if (reply.Code >= 400 && reply.Code != 452)
        {
            // 452 (recipient limits) tells a well-behaved mailer to send the rest later: not an error storm.
            _errors++;
        }
    }

    private async Task TryWriteAsync(SmtpReply reply)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _client.WriteAsync(Encoding.UTF8.GetBytes(reply.ToWire()), timeout.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client is gone; nothing to tell it.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _writeTimeout.Dispose();
        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
        }
    }
}
