using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.IO;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Tls;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The SMTP conversation with one redirected client, relayed in lock-step to its original destination:
/// every command that reaches the upstream is answered with the upstream's own reply, and DATA gets
/// 250 only after the upstream said 250. Nothing is queued here, so nothing acknowledged can be lost.
/// The protocol state and the open transaction live here alone; <see cref="SessionStateTable"/> says which command
/// is legal where, and the handlers (<see cref="EnvelopeCommands"/>, <see cref="DataCommand"/>) do the work.
/// </summary>
public sealed class InboundSession : IAsyncDisposable
{
    private readonly ConnectionOrigin _origin;
    private readonly InterceptorOptions _options;
    private readonly ITransactionRecorder _recorder;
    private readonly ILogger _logger;
    private readonly IMailPolicy _policy;
    private readonly Stream _clientStream;
    private readonly UpstreamLink _upstream;
    private readonly TimeoutLimits _limits;
    private SessionState _state = SessionState.Connected;
    private RelayTransaction? _transaction;
    private SessionContext? _context;
    private EnvelopeCommands? _envelope;
    private DataCommand? _data;
    private StartTlsCommand? _startTls;

    public InboundSession(
        Stream client,
        ConnectionOrigin origin,
        InterceptorOptions options,
        ITransactionRecorder recorder,
        ILogger logger,
        IMailPolicy policy,
        IUpstreamSource upstreams,
        TimeoutLimits? limits = null)
    {
        _clientStream = client;
        _origin = origin;
        _options = options;
        _recorder = recorder;
        _logger = logger;
        _policy = policy;
        // Explicit limits let tests use fractions of a second; the daemon's come from the options.
        _limits = limits ?? TimeoutLimits.From(options.Smtp);
        _upstream = new UpstreamLink(upstreams.Lease(origin), origin, recorder, logger);
    }

    /// <summary>Where the conversation stands (for tests and diagnostics).</summary>
    public SessionState State => _state;

    /// <summary>
    /// The stages every message of this session passes; without one, the trace header alone. The pipeline is stateless,
    /// so the listener builds one and hands it to every session instead of each session building its own.
    /// </summary>
    public MessagePipeline? Pipeline { get; init; }

    /// <summary>The clock of <see cref="IdleUpstreamRelease"/> (tests step it by hand).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>STARTTLS towards the client (ClientTls.Mode Mint), shared by every session; null: not offered (502).</summary>
    public ClientTlsServer? ClientTls { get; init; }

    /// <summary>Greets a connection we will not serve with one reply and closes it (attribution failed, not redirected...).</summary>
    public static Task RefuseAsync(Stream client, SmtpReply reply, TimeSpan timeout) => ClientChannel.TryWriteAsync(client, reply, timeout);

    /// <summary>Runs the session to its end. Never throws for anything the client or upstream does.</summary>
    public async Task RunAsync(CancellationToken shutdown)
    {
        using var timeouts = new SessionTimeouts(_limits, _logger, _origin, shutdown);
        using var client = new ClientChannel(_clientStream, timeouts);
        var pipeline = Pipeline ?? MessagePipeline.Default(_options.Relay.HeloName, _options.Trace.IncludeProcess);
        var sink = new TransactionSink(_origin, _recorder, _policy, _upstream);
        _context = new SessionContext(_origin, _options, client, timeouts, _upstream, sink, pipeline, _logger) { Tls = ClientTls };
        _envelope = new EnvelopeCommands(_context);
        _data = new DataCommand(_context);
        _startTls = ClientTls is null ? null : new StartTlsCommand(_context, ClientTls);
        var token = timeouts.Token;
        var idleRelease = new IdleUpstreamRelease(_upstream.Lease, _options.Relay.IdleClientRelease, Time, _origin, _logger);
        try
        {
            if (await _upstream.EnsureAsync(token) is { } refusal)
            {
                // The upstream refused us before the greeting: the client sees it where a direct connection would,
                // with a code a greeting may have.
                await client.WriteAsync(SessionReplies.AsGreeting(refusal), token);
                return;
            }

            if (client.SentEarly)
            {
                // A real client waits for the greeting; spamware often does not (Postfix's pregreet test).
                await client.WriteAsync(SessionReplies.PregreetData, token);
                return;
            }

            await client.WriteAsync(new SmtpReply(220, null, $"{_options.Relay.HeloName} ESMTP"), token);
            while (_state != SessionState.Closing)
            {
                if (!_state.HoldsTransaction() && !client.Reader.HasBufferedData)
                {
                    // A client silent between transactions gives its upstream back after Relay.IdleClientReleaseSeconds.
                    idleRelease.Arm();
                }

                var reading = client.ReadCommandAsync(_options.Smtp.MaxCommandLine.ToInt32());
                var waited = !reading.IsCompleted;
                var line = await reading;

                // Commands pipelined without end (NOOPs) never make the read wait: let the sessions that wait run.
                await timeouts.Budget.AfterCommandAsync(waited);

                await idleRelease.DisarmAsync();
                if (!await PaceErrorsAsync(client, token))
                {
                    break;
                }

                await HandleLineAsync(line, token);
                if (client.SaidGoodbye)
                {
                    MoveTo(SessionState.Closing);
                }
            }
        }
        catch (SessionTimeoutException e)
        {
            await client.TryWriteAsync(timeouts.Expire(e.Reason));
        }
        catch (OperationCanceledException) when (timeouts.SessionExpired)
        {
            await client.TryWriteAsync(timeouts.Expire(TimeoutReason.SessionTooLong));
        }
        catch (OperationCanceledException)
        {
            await client.TryWriteAsync(SessionReplies.ShuttingDown);
        }
        catch (IOException e)
        {
            SessionLog.ClientWentAway(_logger, _origin.Uid, _origin.User, e.Message);
        }
        finally
        {
            // A release under way finishes before the lease is given back for good.
            await idleRelease.DisposeAsync();
            if (_transaction is not null)
            {
                await _transaction.FinishAsync("aborted: the client left before finishing the transaction", TransactionOutcome.Refused, UnsentKind.ClientLeft, CancellationToken.None);
            }

            // Kept for the next client when healthy, else ended with QUIT; one cut off mid-DATA was aborted by the
            // transfer (and would be by the lease), so nothing is written into its open DATA.
            await _upstream.DisposeAsync();
        }
    }

    /// <summary>
    /// Error storms (junk commands, dictionary attacks on RCPT): past the soft limit every reply is delayed,
    /// past the hard limit the session ends, like Postfix's smtpd_soft/hard_error_limit. False to close.
    /// </summary>
    private async Task<bool> PaceErrorsAsync(ClientChannel client, CancellationToken token)
    {
        if (client.Errors >= _options.Smtp.HardErrorLimit)
        {
            await client.WriteAsync(SessionReplies.TooManyErrors(client.Errors), token);
            SessionLog.TooManyErrors(_logger, _origin.Uid, _origin.User, client.Errors);
            return false;
        }

        if (client.Errors >= _options.Smtp.SoftErrorLimit)
        {
            var pause = Task.Delay(_options.Smtp.ErrorDelay, token);
            if (!pause.IsCompleted)
            {
                await pause;

                // The pause was a wait, not running time: a command pipelined behind the paced reply must not count as a
                // used slice (the user would be sent back to its turns for a pause of our own making). Only a real one:
                // with Smtp.ErrorDelay 0 every command would reset the session's budget.
                _context!.Timeouts.Budget.Waited();
            }
        }

        return true;
    }

    private async Task HandleLineAsync(Line line, CancellationToken token)
    {
        var client = _context!.Client;
        switch (line.Status)
        {
            case LineStatus.EndOfStream:
                MoveTo(SessionState.Closing);
                return;
            case LineStatus.TooLong:
                await client.WriteAsync(SessionReplies.LineTooLong(_options.Smtp.MaxCommandLine.ToInt32()), token);
                return;
            case LineStatus.BareLineFeed:
                // What follows the bare LF could be a second, smuggled command: answer and hang up, as Postfix does.
                await client.WriteAsync(SessionReplies.BareLineFeed, token);
                MoveTo(SessionState.Closing);
                return;
            case LineStatus.ForbiddenByte:
                await client.WriteAsync(SessionReplies.ForbiddenByte, token);
                return;
        }

        var command = CommandLine.Parse(line.Text);
        var verb = SmtpVerbs.Parse(command.Verb);
        if (verb == SmtpVerb.StartTls && _startTls is null)
        {
            // Not offered (ClientTls.Mode Off): the same 502 in every state, as before STARTTLS existed here.
            await client.WriteAsync(SessionReplies.StartTlsNotOffered, token);
            return;
        }

        var rule = SessionStateTable.Rule(_state, verb);
        if (!rule.IsLegal)
        {
            // The one place an out-of-sequence command is answered (after its syntax, where the table says so).
            var syntax = rule.SyntaxFirst && verb == SmtpVerb.Data ? DataCommand.SyntaxError(command.Argument) : null;
            await client.WriteAsync(syntax ?? rule.OutOfSequence!, token);
            return;
        }

        var result = await RunCommandAsync(verb, command, token);
        MoveTo(result.Close ? SessionState.Closing : result.TookEffect ? rule.OnEffect : rule.OnNoEffect);
    }

    private async Task<StepResult> RunCommandAsync(SmtpVerb verb, CommandLine command, CancellationToken token)
    {
        var (context, envelope) = (_context!, _envelope!);
        switch (verb)
        {
            case SmtpVerb.Ehlo or SmtpVerb.Helo:
                return await envelope.HelloAsync(command, _transaction, token);
            case SmtpVerb.Mail:
                var (result, transaction) = await envelope.MailAsync(command.Argument, token);
                _transaction = transaction;
                return result;
            case SmtpVerb.Rcpt:
                return await envelope.RecipientAsync(command.Argument, _transaction!, token);
            case SmtpVerb.Data:
                return await _data!.RunAsync(command.Argument, _transaction!, () => MoveTo(SessionState.InData), token);
            case SmtpVerb.Rset:
                return await envelope.ResetAsync(_transaction, token);
            case SmtpVerb.StartTls:
                return await _startTls!.RunAsync(command.Argument, token);
            case SmtpVerb.Quit:
                await context.Client.WriteAsync(SessionReplies.Bye, token);
                return StepResult.Success;
            default:
                await context.Client.WriteAsync(ReplyFor(verb, command.Verb), token);
                return StepResult.Success;
        }
    }

    /// <summary>The commands answered locally, whatever the state.</summary>
    private static SmtpReply ReplyFor(SmtpVerb verb, string typed) => verb switch
    {
        SmtpVerb.Noop => SessionReplies.Ok,
        SmtpVerb.Vrfy => SessionReplies.CannotVerify,
        SmtpVerb.Help => SessionReplies.Help,
        SmtpVerb.StartTls => SessionReplies.StartTlsNotOffered,
        SmtpVerb.Bdat => SessionReplies.ChunkingNotOffered,
        SmtpVerb.Auth => SessionReplies.AuthNotOffered,
        _ => SessionReplies.UnknownCommand(typed),
    };

    /// <summary>The one place the state changes; leaving the transaction states lets go of the (finished) transaction.</summary>
    private void MoveTo(SessionState next)
    {
        _state = next;
        if (!next.HoldsTransaction() && next != SessionState.Closing)
        {
            _transaction = null;
        }
    }

    public async ValueTask DisposeAsync() => await _upstream.DisposeAsync();
}
