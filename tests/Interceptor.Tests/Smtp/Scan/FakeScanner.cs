using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Net;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Scan;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Scan;

/// <summary>
/// A scanner on loopback that takes one request and answers with a recorded reply, or never answers (<paramref name="reply"/>
/// null). It reads the request up to its head's Content-length (both protocols send one), so it never relies on a close.
/// </summary>
internal sealed class FakeScanner : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task<byte[]> _served;

    public FakeScanner(byte[]? reply)
    {
        _listener.Start();
        _served = ServeAsync(reply);
    }

    public ScanEndpoint Endpoint => new("127.0.0.1", ((IPEndPoint)_listener.LocalEndpoint).Port, null);

    /// <summary>The request as received.</summary>
    public Task<byte[]> Request => _served;

    public static MessageContext Message(params string[] recipients) =>
        new(new ConnectionOrigin(1001, "alice", new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Parse("192.0.2.25"), 25)), "tx1", "alice@customer.test", recipients);

    /// <summary>A spool holding <paramref name="wire"/> (the SMTP wire form, dot-stuffed).</summary>
    public static async Task<IMessageSpool> SpoolAsync(string wire)
    {
        var spool = await new FileMessageSpoolFactory(Path.Combine(Path.GetTempPath(), "smtpi-scan-tests"), 1 << 20).CreateAsync(Message(), CancellationToken.None);
        await spool.AppendAsync(Encoding.ASCII.GetBytes(wire), CancellationToken.None);
        return spool;
    }

    private async Task<byte[]> ServeAsync(byte[]? reply)
    {
        using var client = await _listener.AcceptSocketAsync();
        var received = new MemoryStream();
        var buffer = new byte[8192];
        while (!Complete(received.ToArray()))
        {
            var read = await client.ReceiveAsync(buffer, SocketFlags.None);
            if (read == 0)
            {
                break;
            }

            received.Write(buffer, 0, read);
        }

        if (reply is null)
        {
            await Task.Delay(Timeout.Infinite).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }, TaskScheduler.Default);
            return received.ToArray();
        }

        await client.SendAsync(reply, SocketFlags.None);
        client.Shutdown(SocketShutdown.Both);
        return received.ToArray();
    }

    private static bool Complete(byte[] request)
    {
        var text = Encoding.Latin1.GetString(request);
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0)
        {
            return false;
        }

        var line = text[..end].Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-length:", StringComparison.OrdinalIgnoreCase));
        return line is not null && request.Length - end - 4 >= int.Parse(line["Content-length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        await Task.WhenAny(_served, Task.Delay(TimeSpan.FromSeconds(1)));
    }
}
