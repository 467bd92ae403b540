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
    public LineReader Reader { get; } = new(client);

    /// <summary>Error replies so far (a 452 is not one), plus the errors counted by hand (MAIL+RSET loops).</summary>
    public int Errors { get; private set; }

    /// <summary>True once a 421 went out: the session ends after it.</summary>
    public bool SaidGoodbye { get; private set; }

    /// <summary>True when the client has sent bytes we have not asked for yet.</summary>
    public bool SentEarly => Reader.HasBufferedData || client is System.Net.Sockets.NetworkStream { DataAvailable: true };

    public void CountError() => Errors++;

    public ValueTask<Line> ReadCommandAsync(int maxLength) => timeouts.ReadCommandAsync(Reader, maxLength);

    public async Task WriteAsync(SmtpReply reply, CancellationToken token)
    {
        await timeouts.WriteAsync(client, Encoding.UTF8.GetBytes(reply.ToWire()), token);
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
    public Task TryWriteAsync(SmtpReply reply) => TryWriteAsync(client, reply, TimeSpan.FromSeconds(5));

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

    public void Dispose() => Reader.Dispose();
}
