using System.Net;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Interceptor.Core.Replies;
using Interceptor.Core.Threading;
using Interceptor.Smtp.IO;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// One SMTP client session to the upstream, driven by typed operations so that every client command gets the
/// upstream's own reply (lock-step). Its protocol state (<see cref="UpstreamState"/>) follows from the operations
/// and their replies. Our own small client: MailKit's SmtpClient sends MAIL, RCPT and DATA in one call and cannot
/// stream raw bytes. Bytes go through an <see cref="IUpstreamTransport"/>, so tests replay recorded dialogues.
/// </summary>
public sealed partial class UpstreamConnection : IAsyncDisposable
{
    private readonly IUpstreamTransport _transport;
    private readonly UpstreamSettings _settings;
    private readonly OperationTimeout _writeTimeout = new();
    private readonly long _openedAt = Environment.TickCount64;
    private Stream _stream;
    private LineReader _reader;

    private UpstreamConnection(IUpstreamTransport transport, IPEndPoint endpoint, UpstreamSettings settings)
    {
        _transport = transport;
        _stream = transport.Stream;
        _reader = NewReader(_stream);
        Endpoint = endpoint;
        ReuseKey = Format(endpoint);
        _settings = settings;
    }

    /// <summary>
    /// Replies are read only when one is due, right after a command: the reader holds its buffer only until the reply
    /// is parsed, and an idle session (in the reuse cache, or behind an idle client) holds none. No zero-byte wait: it
    /// would cost a receive call per reply for a buffer held a few milliseconds.
    /// </summary>
    private static LineReader NewReader(Stream stream) => new(stream, 8 * 1024, waitWithoutBuffer: false);

    public IPEndPoint Endpoint { get; }

    /// <summary>The pool relay this session goes to (its Relay.Smarthosts name); null for a direct session.</summary>
    public string? Relay { get; internal set; }

    /// <summary>What idle sessions are kept and handed on by: the endpoint, or a pool relay and its login.</summary>
    internal string ReuseKey { get; set; }

    /// <summary>Told every reply to MAIL, RCPT, DATA and the end of data (the relay pool's burn detection).</summary>
    public IUpstreamReplyWatcher? Watcher { get; set; }

    /// <summary>The current (or last) transaction's reverse and forward paths as sent: what a reply may quote back.</summary>
    public IReadOnlyList<string> Envelope => _envelope;

    private readonly List<string> _envelope = [];

    // Only a watched session needs them (the relay pool's); the path without its parameters.
    private void RememberPath(string arguments)
    {
        if (Watcher is not null)
        {
            _envelope.Add(arguments[..PathEnd(arguments)]);
        }
    }

    /// <summary>Where "&lt;path&gt; PARAMS" ends its path: a quoted local part may hold spaces and brackets.</summary>
    private static int PathEnd(string arguments)
    {
        if (arguments.StartsWith('<'))
        {
            var close = Protocol.EnvelopeCommand.FindClosingBracket(arguments);
            return close < 0 ? arguments.Length : close + 1;
        }

        var space = arguments.IndexOf(' ');
        return space < 0 ? arguments.Length : space;
    }

    public UpstreamCapabilities Capabilities { get; private set; } = UpstreamCapabilities.Basic;

    public bool IsTls => _stream is SslStream;

    /// <summary>The endpoint as events show it: "192.0.2.1:25 (TLS)".</summary>
    public string Description => Format(Endpoint) + (IsTls ? " (TLS)" : "");

    public UpstreamState State { get; private set; } = UpstreamState.Ready;

    /// <summary>True while a command may be sent; false once broken or closed (or while message bytes are due).</summary>
    public bool IsUsable => State is UpstreamState.Ready or UpstreamState.InTransaction;

    /// <summary>True once STARTTLS was accepted, so a failure from here on is a TLS failure.</summary>
    private bool TlsStarted { get; set; }

    /// <summary>Messages whose end of data got a reply on this session.</summary>
    public int Messages { get; private set; }

    /// <summary>How long ago the session was opened.</summary>
    public TimeSpan Age => TimeSpan.FromMilliseconds(Environment.TickCount64 - _openedAt);

    /// <summary>
    /// Connects, reads the greeting, says EHLO (HELO if refused) and upgrades with STARTTLS when offered.
    /// Returns the open session, or the upstream's refusal (a greeting or EHLO failure) as a reply value.
    /// Network faults throw <see cref="UpstreamException"/>.
    /// </summary>
    public static async Task<(UpstreamConnection? Connection, SmtpReply? Refusal)> OpenAsync(
        IPEndPoint endpoint, UpstreamSettings settings, IUpstreamConnector connector, CancellationToken cancellationToken)
    {
        var opened = await OpenAsync(endpoint, settings, connector, null, cancellationToken);
        return (opened.Connection, opened.Refusal);
    }

    /// <summary>
    /// As above, then AUTH with <paramref name="login"/> when given (only ever over TLS). With
    /// <see cref="UpstreamSettings.VerifiedTls"/> STARTTLS is required and the certificate verified: a relay that does
    /// not offer it or fails it throws <see cref="UpstreamUnavailableException"/>, never falls back to plain text.
    /// </summary>
    public static async Task<UpstreamOpening> OpenAsync(
        IPEndPoint endpoint, UpstreamSettings settings, IUpstreamConnector connector, Pool.RelayCredential? login, CancellationToken cancellationToken)
    {
        var useTls = settings.UseStartTls;
        while (true)
        {
            var transport = await connector.ConnectAsync(endpoint, settings.ConnectTimeout, cancellationToken);
            var connection = new UpstreamConnection(transport, endpoint, settings);
            try
            {
                var (refusal, step) = await connection.HandshakeAsync(useTls, login, cancellationToken);
                if (refusal is not null)
                {
                    await connection.DisposeAsync();
                }

                return refusal is null ? new UpstreamOpening(connection, null, step) : new UpstreamOpening(null, refusal, step);
            }
            catch (Exception e) when (useTls && connection.TlsStarted && settings.VerifiedTls is null && e is System.Security.Authentication.AuthenticationException or IOException)
            {
                // Like an MTA doing opportunistic TLS: a failed handshake means retry in plain text.
                await connection.DisposeAsync();
                useTls = false;
            }
            catch (Exception e) when (connection.TlsStarted && settings.VerifiedTls is not null && e is System.Security.Authentication.AuthenticationException or IOException)
            {
                await connection.DisposeAsync();
                throw new UpstreamUnavailableException($"STARTTLS with {Format(endpoint)} failed: {e.Message}", e);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                await connection.DisposeAsync();
                throw new UpstreamTimeoutException($"TLS handshake with {Format(endpoint)} did not finish within {settings.ReplyTimeout.TotalSeconds:0} s");
            }
            catch (IOException e)
            {
                await connection.DisposeAsync();
                throw new UpstreamConnectionLostException($"connection to {Format(endpoint)} lost during the handshake ({e.Message})", e);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }
    }

    private async Task<(SmtpReply? Refusal, UpstreamOpeningStep Step)> HandshakeAsync(bool useTls, Pool.RelayCredential? login, CancellationToken cancellationToken)
    {
        var greeting = await ReadReplyAsync(_settings.ReplyTimeout, cancellationToken);
        if (greeting.Code != 220)
        {
            return (greeting, UpstreamOpeningStep.Greeting);
        }

        var ehlo = await CommandAsync($"EHLO {_settings.HeloName}", cancellationToken);
        if (ehlo.Code != 250)
        {
            var helo = await CommandAsync($"HELO {_settings.HeloName}", cancellationToken);
            if (helo.Code != 250)
            {
                return (helo, UpstreamOpeningStep.Hello);
            }

            Capabilities = UpstreamCapabilities.Basic;
            return await SecureAndAuthenticateAsync(login, cancellationToken);
        }

        Capabilities = UpstreamCapabilities.FromEhlo(ehlo.Lines);
        _ehloLines = ehlo.Lines;
        if (useTls && Capabilities.StartTls)
        {
            var ready = await CommandAsync("STARTTLS", cancellationToken);
            if (ready.Code == 220)
            {
                TlsStarted = true;
                await UpgradeToTlsAsync(cancellationToken);
                ehlo = await CommandAsync($"EHLO {_settings.HeloName}", cancellationToken);
                if (ehlo.Code != 250)
                {
                    return (ehlo, UpstreamOpeningStep.Hello);
                }

                Capabilities = UpstreamCapabilities.FromEhlo(ehlo.Lines);
                _ehloLines = ehlo.Lines;
            }
            else if (_settings.VerifiedTls is not null)
            {
                return (ready, UpstreamOpeningStep.StartTls);
            }
        }

        return await SecureAndAuthenticateAsync(login, cancellationToken);
    }

    private async Task UpgradeToTlsAsync(CancellationToken cancellationToken)
    {
        var handshake = new HandshakeStream(_stream, leaveInnerOpen: false);
        var tls = new SslStream(handshake, leaveInnerStreamOpen: false);
        var options = _settings.VerifiedTls is { } verified ? verified.ClientOptions() : OpportunisticTlsOptions(Endpoint.Address);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_settings.ReplyTimeout);
        await BlockingWork.RunAsync(() => new ValueTask(tls.AuthenticateAsClientAsync(options, timeout.Token)));
        handshake.Handshaking = false;
        _reader.Dispose();
        _stream = tls;
        _reader = NewReader(tls);
    }

    /// <summary>
    /// STARTTLS towards a destination the customer chose (RFC 3207, opportunistic): any certificate is taken, so its chain
    /// is never fetched. By default .NET downloads a missing issuer from the URL the certificate names (its AIA) while it
    /// builds the chain, synchronously, during the handshake: the customer's own MX would make the daemon fetch any URL
    /// it likes (an internal address included) and hold a pump for the download's 15 s timeout on every connection.
    /// </summary>
    internal static SslClientAuthenticationOptions OpportunisticTlsOptions(IPAddress address) => new()
    {
        TargetHost = address.ToString(),
#pragma warning disable CA5359 // Opportunistic STARTTLS between MTAs (RFC 3207): we know only an IP, not a name to verify.
        RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
        CertificateChainPolicy = new X509ChainPolicy { DisableCertificateDownloads = true, RevocationMode = X509RevocationMode.NoCheck },
    };

    /// <summary>MAIL FROM:<paramref name="arguments"/> (the reverse path and the parameters the upstream takes).</summary>
    public async Task<SmtpReply> MailAsync(string arguments, CancellationToken cancellationToken)
    {
        Require(UpstreamState.Ready, "MAIL");
        _envelope.Clear();
        RememberPath(arguments);
        var reply = Watched(UpstreamStep.Mail, await CommandAsync("MAIL FROM:" + arguments, cancellationToken));
        return Settle(reply, reply.IsPositive ? UpstreamState.InTransaction : UpstreamState.Ready);
    }

    /// <summary>RCPT TO:<paramref name="forwardPath"/>; a refused recipient leaves the transaction open.</summary>
    public async Task<SmtpReply> RcptAsync(string forwardPath, CancellationToken cancellationToken)
    {
        Require(UpstreamState.InTransaction, "RCPT");
        RememberPath(forwardPath);
        return Settle(Watched(UpstreamStep.Rcpt, await CommandAsync("RCPT TO:" + forwardPath, cancellationToken)), UpstreamState.InTransaction);
    }

    /// <summary>DATA; after 354 only <see cref="WriteDataAsync"/> and <see cref="FinishDataAsync"/> may follow.</summary>
    public async Task<SmtpReply> DataAsync(CancellationToken cancellationToken)
    {
        Require(UpstreamState.InTransaction, "DATA");
        var reply = Watched(UpstreamStep.Data, await CommandAsync("DATA", cancellationToken));

        // Some upstreams keep their transaction after refusing DATA (Postfix does): it stays open until RSET.
        return Settle(reply, reply.Code == 354 ? UpstreamState.InData : UpstreamState.InTransaction);
    }

    /// <summary>RSET: the upstream drops any transaction it holds. A refused RSET changes nothing.</summary>
    public async Task<SmtpReply> RsetAsync(CancellationToken cancellationToken)
    {
        var before = State;
        if (!IsUsable)
        {
            throw Abandoned();
        }

        var reply = await CommandAsync("RSET", cancellationToken);
        return Settle(reply, reply.Code == 250 ? UpstreamState.Ready : before);
    }

    /// <summary>Writes message bytes after DATA; bounded by the reply timeout so a stalled upstream cannot hold us.</summary>
    public Task WriteDataAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Require(UpstreamState.InData, "message data");
        return WriteAsync(data, UpstreamState.InData, cancellationToken);
    }

    /// <summary>
    /// Sends the last message bytes, which must end with the end-of-data line, and waits (longer) for the verdict on
    /// the message.
    /// </summary>
    public async Task<SmtpReply> FinishDataAsync(ReadOnlyMemory<byte> lastBytesAndEndOfData, CancellationToken cancellationToken)
    {
        if (!lastBytesAndEndOfData.Span.EndsWith(".\r\n"u8))
        {
            throw new ArgumentException("the last bytes of DATA must end with the end-of-data line", nameof(lastBytesAndEndOfData));
        }

        Require(UpstreamState.InData, "the end of data");
        await WriteAsync(lastBytesAndEndOfData, UpstreamState.InData, cancellationToken);
        var verdict = Watched(UpstreamStep.EndOfData, await ReadReplyAsync(_settings.DataReplyTimeout, cancellationToken));

        // Whatever the verdict, the end of data ends the upstream's transaction (RFC 5321 4.1.1.4).
        Messages++;
        return Settle(verdict, UpstreamState.Ready);
    }

    /// <summary>One command line and its reply; the session is <see cref="UpstreamState.Broken"/> until the reply came.</summary>
    // Pooled state machines here and in ReadReplyAsync and ReplyParser.ReadAsync: every command of every relayed message
    // waits for its reply, and their boxes and tasks were 6% of the daemon's allocations under load (issue 19).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<SmtpReply> CommandAsync(string command, CancellationToken cancellationToken)
    {
        await WriteAsync(Encoding.UTF8.GetBytes(command + "\r\n"), State, cancellationToken);
        return await ReadReplyAsync(_settings.ReplyTimeout, cancellationToken);
    }

    /// <summary>The state after a reply: <paramref name="next"/>, unless the upstream said 421 (it is closing).</summary>
    private SmtpReply Settle(SmtpReply reply, UpstreamState next)
    {
        State = reply.Code == 421 ? UpstreamState.Broken : next;
        return reply;
    }

    private void Require(UpstreamState expected, string operation)
    {
        if (State is UpstreamState.Broken or UpstreamState.Closed)
        {
            throw Abandoned();
        }

        if (State != expected)
        {
            throw new InvalidOperationException($"{operation} is not valid while the upstream session is {State}");
        }
    }

    // After a timeout or a garbled reply, a late answer could pair with the wrong command: never reuse.
    private UpstreamConnectionLostException Abandoned() => new($"the session with {Format(Endpoint)} was abandoned after an earlier failure");

    /// <summary>
    /// Writes bytes; the session counts as broken while the write is under way (an unfinished write leaves the
    /// upstream mid-command) and is in <paramref name="after"/> once it completed.
    /// </summary>
    private async Task WriteAsync(ReadOnlyMemory<byte> data, UpstreamState after, CancellationToken cancellationToken)
    {
        using var timeout = _writeTimeout.Start(_settings.ReplyTimeout, cancellationToken);
        State = UpstreamState.Broken;
        try
        {
            await _stream.WriteAsync(data, timeout.Token);
            State = after;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Abort();
            throw new UpstreamTimeoutException($"{Format(Endpoint)} accepted no data for {_settings.ReplyTimeout.TotalSeconds:0} s");
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            Abort();
            throw new UpstreamConnectionLostException($"connection to {Format(Endpoint)} lost while sending ({e.InnerException?.Message ?? e.Message})", e);
        }
    }

    /// <summary>Reads a reply; the session is <see cref="UpstreamState.Broken"/> unless the reply arrived whole.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<SmtpReply> ReadReplyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var before = State;
        State = UpstreamState.Broken;
        try
        {
            var reply = await ReplyParser.ReadAsync(_reader, timeout, cancellationToken);
            return Settle(reply, before);
        }
        catch (UpstreamException)
        {
            Abort();
            throw;
        }
    }

    /// <summary>Drops the session without QUIT: an unfinished DATA is then discarded by the upstream.</summary>
    public void Abort()
    {
        State = UpstreamState.Closed;
        _transport.Abort();
    }

    /// <summary>
    /// Ends the session politely when it is still usable: QUIT is sent, its reply is not waited for. Like Postfix's
    /// smtp client (smtp_skip_quit_response = yes): the transaction's outcome is known already, and waiting would
    /// cost a round trip and a wake-up per connection for a reply nobody uses.
    /// </summary>
    public async Task QuitAsync(CancellationToken cancellationToken)
    {
        if (!IsUsable)
        {
            return;
        }

        try
        {
            await WriteAsync("QUIT\r\n"u8.ToArray(), UpstreamState.Closed, cancellationToken);
        }
        catch (Exception e) when (e is UpstreamException or OperationCanceledException or IOException)
        {
            // Best effort: the session is over either way.
        }

        State = UpstreamState.Closed;
    }

    /// <summary>
    /// True when nothing has arrived on an idle session: no buffered bytes, no end of stream, no unasked-for reply
    /// (an upstream closing an idle connection sends 421 first). Costs one poll, no round trip.
    /// </summary>
    public bool LooksIdleAndOpen() => IsUsable && !_reader.HasBufferedData && !_transport.HasUnaskedInput();

    public async ValueTask DisposeAsync()
    {
        State = UpstreamState.Closed;
        _reader.Dispose();
        await _stream.DisposeAsync();
        await _transport.DisposeAsync();
        _writeTimeout.Dispose();
    }

    public static string Format(IPEndPoint endpoint) => endpoint.ToString();
}
