using System.Text;
using Interceptor.Core.Replies;
using Interceptor.Smtp.IO;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The client side of a session: its bytes in (commands and DATA, through <see cref="SessionTimeouts"/>), our replies
/// out, and the tally of error replies that paces an error storm.
/// </summary>
internal sealed class ClientChannel(Stream client, SessionTimeouts timeouts) : IDisposable
{
    private Stream _client = client;

    public LineReader Reader { get; private set; } = new(client);

    /// <summary>The connection as it stands now: the accepted stream, or its TLS layer after STARTTLS.</summary>
    public Stream Stream => _client;

    /// <summary>True once STARTTLS succeeded.</summary>
    public bool IsSecure { get; private set; }

    /// <summary>Error replies so far (a 452 is not one), plus the errors counted by hand (MAIL+RSET loops).</summary>
    public int Errors { get; private set; }

    /// <summary>True once a 421 went out: the session ends after it.</summary>
    public bool SaidGoodbye { get; private set; }

    /// <summary>True when the client has sent bytes we have not asked for yet.</summary>
    public bool SentEarly => Reader.HasBufferedData || _client is System.Net.Sockets.NetworkStream { DataAvailable: true };

    public void CountError() => Errors++;

    /// <summary>
    /// Throws away what the client sent after the command just read (RFC 3207 section 4.2: nothing before the handshake
    /// may be taken as sent under TLS; CVE-2011-0411). Returns how many bytes were dropped.
    /// </summary>
    public int DiscardBuffered()
    {
        var count = Reader.Buffered.Length;
        Reader.Advance(count);
        return count;
    }

    /// <summary>From now on, reads and writes go through <paramref name="secured"/>, with a fresh, empty line buffer.</summary>
    public void Secure(Stream secured)
    {
        Reader.Dispose();
        Reader = new LineReader(secured);
        _client = secured;
        IsSecure = true;
    }

    public ValueTask<Line> ReadCommandAsync(int maxLength) => timeouts.ReadCommandAsync(Reader, maxLength);

    public async Task WriteAsync(SmtpReply reply, CancellationToken token)
    {
        await timeouts.WriteAsync(_client, Encoding.UTF8.GetBytes(reply.ToWire()), token);
        if (reply.Code == 421)
        {
            SaidGoodbye = true;
        }
        else if (reply.Code >= 400 && reply.Code != 452)
        {
            // 452 (recipient limits) tells a well-behaved mailer to send the rest later: not an error storm.
            Errors++;
        }
    }

    /// <summary>A last word to a client that may be gone or not reading: bounded, never throws for the client's faults.</summary>
    public Task TryWriteAsync(SmtpReply reply) => TryWriteAsync(_client, reply, TimeSpan.FromSeconds(5));

    public static async Task TryWriteAsync(Stream client, SmtpReply reply, TimeSpan timeout)
    {
        using var source = new CancellationTokenSource(timeout);
        try
        {
            await client.WriteAsync(Encoding.UTF8.GetBytes(reply.ToWire()), source.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client is gone or not reading; there is nothing more to tell it.
        }
    }

    public void Dispose()
    {
        Reader.Dispose();
        if (IsSecure)
        {
            // The TLS layer only; the accepted stream underneath belongs to the listener.
            _client.Dispose();
        }
    }
}
