using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Replies;
using Interceptor.Smtp.IO;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// One SMTP client session to the upstream, driven command by command so that every client command
/// gets the upstream's own reply (lock-step). Our own small client: MailKit's SmtpClient sends
/// MAIL, RCPT and DATA in one call and cannot stream raw bytes.
/// </summary>
public sealed class UpstreamConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly UpstreamSettings _settings;
    private readonly OperationTimeout _writeTimeout = new();
    private readonly long _openedAt = Environment.TickCount64;
    private Stream _stream;
    private LineReader _reader;
    private bool _usable = true;

    // Set while a command, a write or a reply is under way: an operation that never completed (cancelled, timed
    // out, failed) leaves a reply that could pair with a later command, so the session is never used again.
    private bool _operationPending;

    private UpstreamConnection(Socket socket, Stream stream, IPEndPoint endpoint, UpstreamSettings settings)
    {
        _socket = socket;
        _stream = stream;
        _reader = new LineReader(stream, 8 * 1024);
        Endpoint = endpoint;
        _settings = settings;
    }

    public IPEndPoint Endpoint { get; }

    public UpstreamCapabilities Capabilities { get; private set; } = UpstreamCapabilities.Basic;

    public bool IsTls => _stream is SslStream;

    /// <summary>True once STARTTLS was accepted, so a failure from here on is a TLS failure.</summary>
    private bool TlsStarted { get; set; }

    /// <summary>False once the session broke; the owner opens a new one for the next transaction.</summary>
    public bool IsUsable => _usable && !_operationPending;

    /// <summary>True from MAIL until the end of data or a successful RSET: the upstream may hold a transaction.</summary>
    public bool TransactionOpen { get; private set; }

    /// <summary>Messages whose end of data got a reply on this session.</summary>
    public int Messages { get; private set; }

    /// <summary>How long ago the session was opened.</summary>
    public TimeSpan Age => TimeSpan.FromMilliseconds(Environment.TickCount64 - _openedAt);

    /// <summary>
    /// True when the session was handed over by <see cref="UpstreamConnectionCache"/> and nothing was sent on it since:
    /// the upstream may have closed it while it sat idle, which only the first command can show.
    /// </summary>
    public bool UnprovenSinceCached { get; internal set; }

    /// <summary>
    /// Connects, reads the greeting, says EHLO (HELO if refused) and upgrades with STARTTLS when offered.
    /// Returns the open session, or the upstream's refusal (a greeting or EHLO failure) as a reply value.
    /// Network faults throw <see cref="UpstreamException"/>.
    /// </summary>
    public static async Task<(UpstreamConnection? Connection, SmtpReply? Refusal)> OpenAsync(
        IPEndPoint endpoint, UpstreamSettings settings, CancellationToken cancellationToken)
    {
        var useTls = settings.UseStartTls;
        while (true)
        {
            var connection = await ConnectAsync(endpoint, settings, cancellationToken);
            try
            {
                var refusal = await connection.HandshakeAsync(useTls, cancellationToken);
                if (refusal is not null)
                {
                    await connection.DisposeAsync();
                }

                return refusal is null ? (connection, null) : (null, refusal);
            }
            catch (Exception e) when (useTls && connection.TlsStarted && e is System.Security.Authentication.AuthenticationException or IOException)
            {
                // Like an MTA doing opportunistic TLS: a failed handshake means retry in plain text.
                await connection.DisposeAsync();
                useTls = false;
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

    private static async Task<UpstreamConnection> ConnectAsync(IPEndPoint endpoint, UpstreamSettings settings, CancellationToken cancellationToken)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(settings.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(endpoint, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new UpstreamUnavailableException($"connect to {Format(endpoint)} timed out after {settings.ConnectTimeout.TotalSeconds:0} s");
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new UpstreamUnavailableException($"connect to {Format(endpoint)} failed: {Describe(e.SocketErrorCode)}", e);
        }

        return new UpstreamConnection(socket, new NetworkStream(socket, ownsSocket: false), endpoint, settings);
    }

    private async Task<SmtpReply?> HandshakeAsync(bool useTls, CancellationToken cancellationToken)
    {
        var greeting = await ReadReplyAsync(_settings.ReplyTimeout, cancellationToken);
        if (greeting.Code != 220)
        {
            return greeting;
        }

        var ehlo = await SendAsync($"EHLO {_settings.HeloName}", cancellationToken);
        if (ehlo.Code != 250)
        {
            var helo = await SendAsync($"HELO {_settings.HeloName}", cancellationToken);
            if (helo.Code != 250)
            {
                return helo;
            }

            Capabilities = UpstreamCapabilities.Basic;
            return null;
        }

        Capabilities = UpstreamCapabilities.FromEhlo(ehlo.Lines);
        if (useTls && Capabilities.StartTls)
        {
            var ready = await SendAsync("STARTTLS", cancellationToken);
            if (ready.Code == 220)
            {
                TlsStarted = true;
                await UpgradeToTlsAsync(cancellationToken);
                ehlo = await SendAsync($"EHLO {_settings.HeloName}", cancellationToken);
                if (ehlo.Code != 250)
                {
                    return ehlo;
                }

                Capabilities = UpstreamCapabilities.FromEhlo(ehlo.Lines);
            }
        }

        return null;
    }

    private async Task UpgradeToTlsAsync(CancellationToken cancellationToken)
    {
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = Endpoint.Address.ToString(),
#pragma warning disable CA5359 // Opportunistic STARTTLS between MTAs (RFC 3207): we know only an IP, not a name to verify.
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
        };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_settings.ReplyTimeout);
        await tls.AuthenticateAsClientAsync(options, timeout.Token);
        _reader.Dispose();
        _stream = tls;
        _reader = new LineReader(tls, 8 * 1024);
    }

    /// <summary>Sends one command line and returns the upstream's reply.</summary>
    public async Task<SmtpReply> SendAsync(string command, CancellationToken cancellationToken)
    {
        // After a timeout or a garbled reply, a late answer could pair with the wrong command: never reuse.
        if (!IsUsable)
        {
            throw new UpstreamConnectionLostException($"the session with {Format(Endpoint)} was abandoned after an earlier failure");
        }

        if (command.StartsWith("MAIL ", StringComparison.OrdinalIgnoreCase))
        {
            TransactionOpen = true;
        }

        await WriteAsync(Encoding.UTF8.GetBytes(command + "\r\n"), cancellationToken);
        var reply = await ReadReplyAsync(_settings.ReplyTimeout, cancellationToken);
        if (reply.Code == 250 && command.Equals("RSET", StringComparison.OrdinalIgnoreCase))
        {
            TransactionOpen = false;
        }

        return reply;
    }

    /// <summary>Writes message bytes during DATA; bounded by the reply timeout so a stalled upstream cannot hold us.</summary>
    public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (!IsUsable)
        {
            throw new UpstreamConnectionLostException($"the session with {Format(Endpoint)} was abandoned after an earlier failure");
        }

        UnprovenSinceCached = false;
        using var timeout = _writeTimeout.Start(_settings.ReplyTimeout, cancellationToken);
        _operationPending = true;
        try
        {
            await _stream.WriteAsync(data, timeout.Token);
            _operationPending = false;
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

        await WriteAsync(lastBytesAndEndOfData, cancellationToken);
        var verdict = await ReadReplyAsync(_settings.DataReplyTimeout, cancellationToken);

        // Whatever the verdict, the end of data ends the upstream's transaction (RFC 5321 4.1.1.4).
        TransactionOpen = false;
        Messages++;
        return verdict;
    }

    private async Task<SmtpReply> ReadReplyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        _operationPending = true;
        try
        {
            var reply = await ReplyParser.ReadAsync(_reader, timeout, cancellationToken);
            _operationPending = false;
            if (reply.Code == 421)
            {
                _usable = false;
            }

            return reply;
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
        _usable = false;
        try
        {
            _socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed: aborting twice is fine.
        }

        _socket.Dispose();
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
            await WriteAsync("QUIT\r\n"u8.ToArray(), cancellationToken);
        }
        catch (Exception e) when (e is UpstreamException or OperationCanceledException or IOException)
        {
            // Best effort: the session is over either way.
        }

        _usable = false;
    }

    /// <summary>
    /// True when nothing has arrived on an idle session: no buffered bytes, no end of stream, no unasked-for reply
    /// (an upstream closing an idle connection sends 421 first). Costs one poll, no round trip.
    /// </summary>
    public bool LooksIdleAndOpen()
    {
        if (!IsUsable || _reader.HasBufferedData)
        {
            return false;
        }

        try
        {
            return !_socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _usable = false;
        _reader.Dispose();
        await _stream.DisposeAsync();
        _socket.Dispose();
        _writeTimeout.Dispose();
    }

    public static string Format(IPEndPoint endpoint) => endpoint.ToString();

    private static string Describe(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => "connection refused",
        SocketError.NetworkUnreachable => "network unreachable",
        SocketError.HostUnreachable => "host unreachable",
        SocketError.TimedOut => "timed out",
        _ => error.ToString(),
    };
}
