using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>One reply as the client saw it: the code and every raw line ("250-PIPELINING", "250 2.0.0 Ok").</summary>
internal sealed record SmtpTestReply(int Code, IReadOnlyList<string> Lines)
{
    /// <summary>The reply as on the wire, lines joined by CRLF (no final CRLF).</summary>
    public string Text => string.Join("\r\n", Lines);

    /// <summary>The EHLO keywords: every line after the first, without the code.</summary>
    public IReadOnlyList<string> Keywords => [.. Lines.Skip(1).Select(l => l[4..])];

    public override string ToString() => Text;
}

/// <summary>The customer's side: sends raw bytes, reads (multi-line) replies, each wait bounded.</summary>
internal sealed class SmtpTestClient(Socket socket) : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private Stream _stream = new NetworkStream(socket, ownsSocket: true);
    private WireReader? _reader;

    private WireReader Reader => _reader ??= new WireReader(_stream);

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await _stream.WriteAsync(bytes, timeout.Token);
    }

    /// <summary>Sends one command line (CRLF added) and returns its reply.</summary>
    public async Task<SmtpTestReply> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync();
    }

    public async Task<SmtpTestReply> ReadReplyAsync(TimeSpan? within = null)
    {
        using var timeout = new CancellationTokenSource(within ?? Timeout);
        var lines = new List<string>();
        while (true)
        {
            byte[]? raw;
            try
            {
                raw = await Reader.ReadLineAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"no complete reply within {(within ?? Timeout).TotalSeconds} s; got so far: [{string.Join(" | ", lines)}]");
                throw;
            }

            if (raw is null)
            {
                throw new AssertionException($"the relay closed the connection; reply so far: [{string.Join(" | ", lines)}]");
            }

            Assert.That(raw.AsSpan().EndsWith("\r\n"u8), $"reply line not CRLF-terminated: {Encoding.UTF8.GetString(raw)}");
            var line = WireReader.Text(raw);
            Assert.That(line, Has.Length.GreaterThanOrEqualTo(3).And.Match("^[2-5][0-9][0-9]([ -]|$)"), "not an SMTP reply line");
            lines.Add(line);
            if (line.Length == 3 || line[3] == ' ')
            {
                return new SmtpTestReply(int.Parse(line.AsSpan(0, 3), System.Globalization.CultureInfo.InvariantCulture), lines);
            }
        }
    }

    /// <summary>True when the relay closed the connection (after nothing more than already read).</summary>
    public async Task<bool> IsClosedAsync(TimeSpan? within = null)
    {
        using var timeout = new CancellationTokenSource(within ?? Timeout);
        try
        {
            return await Reader.AtEndAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The usual opening: the greeting and an EHLO; returns the EHLO reply.</summary>
    public async Task<SmtpTestReply> GreetAsync(string name = "web1.customer.test")
    {
        var greeting = await ReadReplyAsync();
        Assert.That(greeting.Code, Is.EqualTo(220), greeting.Text);
        var ehlo = await CommandAsync($"EHLO {name}");
        Assert.That(ehlo.Code, Is.EqualTo(250), ehlo.Text);
        return ehlo;
    }

    /// <summary>MAIL, each RCPT, DATA and the body; asserts the envelope was accepted and returns the final reply.</summary>
    public async Task<SmtpTestReply> SendMessageAsync(string from, IEnumerable<string> recipients, string wireBody)
    {
        var mail = await CommandAsync($"MAIL FROM:<{from}>");
        Assert.That(mail.Code, Is.EqualTo(250), mail.Text);
        foreach (var recipient in recipients)
        {
            var rcpt = await CommandAsync($"RCPT TO:<{recipient}>");
            Assert.That(rcpt.Code, Is.EqualTo(250), rcpt.Text);
        }

        var data = await CommandAsync("DATA");
        Assert.That(data.Code, Is.EqualTo(354), data.Text);
        await SendAsync(wireBody + ".\r\n");
        return await ReadReplyAsync();
    }

    /// <summary>
    /// The client's half of STARTTLS after the 220: a handshake that sends <paramref name="serverName"/> as SNI (none when
    /// null) and trusts <paramref name="trusted"/> alone; returns the certificate the relay showed. Later commands go over TLS.
    /// </summary>
    public async Task<X509Certificate2> StartTlsAsync(string? serverName, X509Certificate2 trusted)
    {
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false);
        using var timeout = new CancellationTokenSource(Timeout);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName ?? "",
            CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { trusted },
                RevocationMode = X509RevocationMode.NoCheck,
            },
            // The chain must verify; the name is for the test to judge (no SNI means an IP SAN, which TargetHost cannot name).
            RemoteCertificateValidationCallback = (_, _, _, errors) => (errors & ~SslPolicyErrors.RemoteCertificateNameMismatch) == SslPolicyErrors.None,
        }, timeout.Token);
        _stream = tls;
        _reader = null;
        return new X509Certificate2(tls.RemoteCertificate!);
    }

    /// <summary>Closes with a TCP reset instead of a FIN (SO_LINGER 0), as a client killed mid-transfer or a probe does.</summary>
    public void Reset()
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    public async ValueTask DisposeAsync() => await _stream.DisposeAsync();
}

/// <summary>Wait-for-condition instead of sleeps.</summary>
internal static class Wait
{
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? SmtpTestClient.Timeout);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting for {what}");
            }

            await Task.Delay(10);
        }
    }

    public static async Task ForAsync(Task task, string what, TimeSpan? within = null)
    {
        var limit = within ?? SmtpTestClient.Timeout;
        if (await Task.WhenAny(task, Task.Delay(limit)) != task)
        {
            Assert.Fail($"timed out after {limit.TotalSeconds} s waiting for {what}");
        }

        await task;
    }

    public static async Task<T> ForAsync<T>(Task<T> task, string what, TimeSpan? within = null)
    {
        var limit = within ?? SmtpTestClient.Timeout;
        if (await Task.WhenAny(task, Task.Delay(limit)) != task)
        {
            Assert.Fail($"timed out after {limit.TotalSeconds} s waiting for {what}");
        }

        return await task;
    }
}
