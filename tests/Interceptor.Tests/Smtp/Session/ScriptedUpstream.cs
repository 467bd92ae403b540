using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Interceptor.Tests.Smtp.IO;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// An in-process SMTP server on 127.0.0.1:0 that plays a script and records what it receives.
/// Session N follows script N (the last script repeats), so reconnects can be scripted too.
/// </summary>
internal sealed class ScriptedUpstream : IAsyncDisposable
{
    private static readonly Lazy<X509Certificate2> Certificate = new(CreateCertificate);

    private readonly UpstreamScript[] _scripts;
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<UpstreamSessionRecord> _sessions = [];
    private readonly List<Task> _running = [];
    private readonly Task _acceptLoop;

    public ScriptedUpstream(params UpstreamScript[] scripts)
    {
        _scripts = scripts.Length == 0 ? [new UpstreamScript()] : scripts;
        if (_scripts.Any(s => s.OfferStartTls))
        {
            // Made now, so the relay's handshake timeout does not pay for the key generation.
            _ = Certificate.Value;
        }

        _listener.Start();
        EndPoint = (IPEndPoint)_listener.LocalEndpoint;
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint { get; }

    public IReadOnlyList<UpstreamSessionRecord> Sessions
    {
        get
        {
            lock (_sessions)
            {
                return [.. _sessions];
            }
        }
    }

    /// <summary>Waits until session <paramref name="index"/> was accepted.</summary>
    public async Task<UpstreamSessionRecord> SessionAsync(int index)
    {
        await Wait.UntilAsync(() => Sessions.Count > index, $"upstream session {index} to be accepted");
        return Sessions[index];
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_sessions)
            {
                var record = new UpstreamSessionRecord(_sessions.Count);
                var script = _scripts[Math.Min(_sessions.Count, _scripts.Length - 1)];
                _sessions.Add(record);
                _running.Add(Task.Run(() => ServeAsync(socket, script, record, _stop.Token)));
            }
        }
    }

    private static async Task ServeAsync(Socket socket, UpstreamScript script, UpstreamSessionRecord record, CancellationToken stop)
    {
        socket.NoDelay = true;
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            var end = await ConverseAsync(socket, stream, script, record, stop);
            record.End(end);
        }
        catch (OperationCanceledException)
        {
            record.End(UpstreamEnd.Cancelled);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            record.End(UpstreamEnd.Reset);
        }
        finally
        {
            await stream.DisposeAsync();
            socket.Dispose();
        }
    }

    private static async Task<UpstreamEnd> ConverseAsync(Socket socket, Stream stream, UpstreamScript script, UpstreamSessionRecord record, CancellationToken stop)
    {
        if (script.Drop == UpstreamDrop.OnConnect)
        {
            return Drop(socket);
        }

        var reader = new WireReader(stream);
        if (script.NeverGreet)
        {
            while (await reader.ReadLineAsync(stop) is { } ignored)
            {
                record.AddCommand(WireReader.Text(ignored));
            }

            return UpstreamEnd.Closed;
        }

        await ReplyAsync(stream, script.DelayFor("GREETING", ""), script.Greeting, stop);
        var tls = false;
        var inTransaction = false;
        var mails = 0;
        while (true)
        {
            var raw = await reader.ReadLineAsync(stop);
            if (raw is null)
            {
                return UpstreamEnd.Closed;
            }

            var line = WireReader.Text(raw);
            record.AddCommand(line);
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var verb = (space < 0 ? line : line[..space]).ToUpperInvariant();
            var argument = space < 0 ? "" : line[(space + 1)..];
            switch (verb)
            {
                case "EHLO":
                    inTransaction = false;
                    await ReplyAsync(stream, script.DelayFor(verb, argument), script.EhloReply(argument, tls), stop);
                    break;
                case "HELO":
                    inTransaction = false;
                    await ReplyAsync(stream, script.DelayFor(verb, argument), "250 mx.upstream.test", stop);
                    break;
                case "STARTTLS" when script.OfferStartTls && !tls:
                    await ReplyAsync(stream, script.DelayFor(verb, argument), "220 2.0.0 Ready to start TLS", stop);
                    switch (script.TlsFault)
                    {
                        case TlsFault.Stall:
                            while (await reader.ReadLineAsync(stop) is not null)
                            {
                            }

                            return UpstreamEnd.Closed;
                        case TlsFault.Drop:
                            return Drop(socket);
                        case TlsFault.Alert:
                            // After the client's hello (never before: bytes sent ahead of the handshake are plain text),
                            // a TLS record: alert, version 3.3, length 2, fatal (2), handshake_failure (40).
                            _ = await stream.ReadAsync(new byte[4096], stop);
                            await stream.WriteAsync(new byte[] { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 }, stop);
                            while (await reader.ReadLineAsync(stop) is not null)
                            {
                            }

                            return UpstreamEnd.Closed;
                    }

                    var secure = new SslStream(stream, leaveInnerStreamOpen: false);
                    await secure.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = Certificate.Value }, stop);
                    stream = secure;
                    reader = new WireReader(secure);
                    tls = true;
                    record.SetTls();
                    break;
                case "MAIL" when script.Drop == UpstreamDrop.AtMail && mails >= script.MailsBeforeDrop:
                    return Drop(socket);
                case "MAIL" when script.StatefulTransaction && inTransaction:
                    await ReplyAsync(stream, script.DelayFor(verb, argument), "503 5.5.1 Error: nested MAIL command", stop);
                    break;
                case "MAIL":
                    var mailReply = mails < script.MailRepliesInTurn.Count ? script.MailRepliesInTurn[mails] : script.ReplyTo(verb, argument);
                    mails++;
                    inTransaction = mailReply.StartsWith('2');
                    await ReplyAsync(stream, script.DelayFor(verb, argument), mailReply, stop);
                    break;
                case "RSET":
                    inTransaction = false;
                    await ReplyAsync(stream, script.DelayFor(verb, argument), script.ReplyTo(verb, argument), stop);
                    break;
                case "QUIT":
                    await ReplyAsync(stream, script.DelayFor(verb, argument), script.ReplyTo(verb, argument), stop);
                    return UpstreamEnd.Quit;
                case "DATA":
                    var go = script.ReplyTo(verb, argument);
                    await ReplyAsync(stream, script.DelayFor(verb, argument), go, stop);
                    if (!go.StartsWith("354", StringComparison.Ordinal))
                    {
                        break;
                    }

                    var (data, complete) = await ReadDataAsync(reader, script, stop);
                    if (!complete)
                    {
                        record.SetPartialData(data);
                        return script.Drop == UpstreamDrop.DuringData && data.Length >= script.DropAfterDataBytes
                            ? Drop(socket)
                            : UpstreamEnd.Closed;
                    }

                    record.AddMessage(data);
                    inTransaction = false;
                    if (script.Drop == UpstreamDrop.AfterFinalDot)
                    {
                        return Drop(socket);
                    }

                    await ReplyAsync(stream, script.DelayFor(".", ""), script.FinalReply, stop);
                    if (script.CloseAfterMessages > 0 && record.Messages.Count >= script.CloseAfterMessages)
                    {
                        await ReplyAsync(stream, TimeSpan.Zero, "421 4.4.2 mx.upstream.test closing connection", stop);
                        return UpstreamEnd.Closed;
                    }

                    break;
                default:
                    await ReplyAsync(stream, script.DelayFor(verb, argument), script.ReplyTo(verb, argument), stop);
                    break;
            }
        }
    }

    /// <summary>
    /// Reads DATA strictly: only a "." CRLF line that follows a CRLF ends it. Returns what came before
    /// (as received) and whether the end was seen. Stops early when the script drops mid-DATA.
    /// </summary>
    private static async Task<(byte[] Data, bool Complete)> ReadDataAsync(WireReader reader, UpstreamScript script, CancellationToken stop)
    {
        using var data = new MemoryStream();
        var afterCrlf = true;
        while (true)
        {
            var line = await reader.ReadLineAsync(stop);
            if (line is null)
            {
                return (data.ToArray(), false);
            }

            if (afterCrlf && line.AsSpan().SequenceEqual(".\r\n"u8))
            {
                return (data.ToArray(), true);
            }

            data.Write(line);
            afterCrlf = line.AsSpan().EndsWith("\r\n"u8);
            if (script.Drop == UpstreamDrop.DuringData && data.Length >= script.DropAfterDataBytes)
            {
                return (data.ToArray(), false);
            }
        }
    }

    private static async Task ReplyAsync(Stream stream, TimeSpan delay, string reply, CancellationToken stop)
    {
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, stop);
        }

        await stream.WriteAsync(Encoding.UTF8.GetBytes(reply + "\r\n"), stop);
        await stream.FlushAsync(stop);
    }

    private static UpstreamEnd Drop(Socket socket)
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
        return UpstreamEnd.DroppedByScript;
    }

    /// <summary>
    /// One TLS handshake over loopback with the test certificate, so the first relay handshake in a test
    /// does not pay for loading the TLS library within its reply timeout.
    /// </summary>
    public static async Task WarmUpTlsAsync()
    {
        using var pair = await LoopbackPair.OpenAsync();
        await using var serverTls = new SslStream(pair.Server);
        await using var clientTls = new SslStream(pair.Client);
        var clientOptions = new SslClientAuthenticationOptions
        {
            TargetHost = "mx.upstream.test",
#pragma warning disable CA5359 // a throwaway self-signed test certificate
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
#pragma warning restore CA5359
        };
        await Task.WhenAll(
            serverTls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = Certificate.Value }),
            clientTls.AuthenticateAsClientAsync(clientOptions));
    }

    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=mx.upstream.test", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("mx.upstream.test");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

        // A PKCS#12 round trip gives a certificate whose private key SslStream can use on every platform.
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pfx), null);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Task[] running;
        lock (_sessions)
        {
            running = [.. _running, _acceptLoop];
        }

        await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        _listener.Dispose();
        _stop.Dispose();
    }
}
