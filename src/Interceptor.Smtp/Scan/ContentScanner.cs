using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Net;
using Interceptor.Smtp.Data;

namespace Interceptor.Smtp.Scan;

/// <summary>A scanner's judgement of one message: its score, the rules that fired (highest first where known), its action.</summary>
public sealed record ScanResult(double Score, IReadOnlyList<string> Symbols, string? Action = null);

/// <summary>The scanner could not judge the message: unreachable, too slow, or an answer we cannot read.</summary>
public sealed class ScanFailedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What a scanner is asked about: the message, and the envelope it travels in.</summary>
/// <param name="HeloName">The name we greet upstreams with (rspamd's <c>Helo</c>).</param>
public sealed record ScanRequest(MessageContext Message, IMessageSpool Spool, string HeloName);

/// <summary>A client of one content scanner. Every phase (connect, send, reply) is bounded by the caller's token.</summary>
public interface IContentScanner
{
    /// <summary>"spamd 127.0.0.1:783", for logs and replies.</summary>
    string Name { get; }

    /// <summary>Returns the verdict or throws <see cref="ScanFailedException"/>; honours <paramref name="token"/> in every wait.</summary>
    Task<ScanResult> ScanAsync(ScanRequest request, CancellationToken token);
}

/// <summary>One request to a scanner on its own connection (TCP or Unix), every phase within the caller's token.</summary>
internal static class ScannerSocket
{
    /// <summary>
    /// Connects, sends <paramref name="head"/> (made from the unstuffed message's length) and the unstuffed message, then
    /// reads the reply to the scanner's close, at most <paramref name="maxReply"/> bytes.
    /// </summary>
    public static async Task<byte[]> ExchangeAsync(
        ScanEndpoint endpoint, string scanner, IMessageSpool spool, Func<long, string> head, bool closeSending, int maxReply, CancellationToken token)
    {
        var length = await UnstuffedMessage.LengthAsync(spool, token);
        using var socket = await ConnectAsync(endpoint, token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            await stream.WriteAsync(Encoding.UTF8.GetBytes(head(length)), token);
            await UnstuffedMessage.CopyAsync(spool, stream, token);
            if (closeSending)
            {
                socket.Shutdown(SocketShutdown.Send);
            }

            var buffer = new byte[maxReply + 1];
            var total = 0;
            int read;
            while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), token)) > 0)
            {
                total += read;
            }

            return total > maxReply ? throw new ScanFailedException($"{scanner}: reply longer than {maxReply} bytes") : buffer[..total];
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            throw new ScanFailedException($"{scanner}: {e.Message}", e);
        }
    }

    private static async Task<Socket> ConnectAsync(ScanEndpoint endpoint, CancellationToken token)
    {
        EndPoint target = endpoint.IsUnix
            ? new UnixDomainSocketEndPoint(endpoint.UnixPath!)
            : IPAddress.TryParse(endpoint.Host, out var address) ? new IPEndPoint(address, endpoint.Port) : new DnsEndPoint(endpoint.Host!, endpoint.Port);
        var socket = endpoint.IsUnix
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(target, token);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ScanFailedException($"cannot connect to {endpoint}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>
/// The message as the scanner must see it. The spool keeps the SMTP wire form, in which every line starting with "." has
/// gained a transparency dot (RFC 5321 4.5.2); scanners read RFC 5322 text, so that dot is dropped here, on the fly.
/// </summary>
internal static class UnstuffedMessage
{
    private const int Chunk = 64 * 1024;

    /// <summary>The length after unstuffing (a first pass over the spool; scanned messages are small).</summary>
    public static async Task<long> LengthAsync(IMessageSpool spool, CancellationToken token)
    {
        long dots = 0;
        await ForEachChunkAsync(spool, (chunk, _) =>
        {
            dots += chunk.Dropped;
            return ValueTask.CompletedTask;
        }, token);
        return spool.Length - dots;
    }

    /// <summary>Writes the unstuffed message to <paramref name="destination"/>.</summary>
    public static Task CopyAsync(IMessageSpool spool, Stream destination, CancellationToken token) =>
        ForEachChunkAsync(spool, async (chunk, t) =>
        {
            foreach (var part in chunk.Parts)
            {
                await destination.WriteAsync(part, t);
            }
        }, token);

    private static async Task ForEachChunkAsync(IMessageSpool spool, Func<Unstuffed, CancellationToken, ValueTask> each, CancellationToken token)
    {
        // One pooled buffer and one list for the whole message: each chunk's parts are used before the next is read.
        var buffer = ArrayPool<byte>.Shared.Rent(Chunk);
        try
        {
            await ForEachChunkAsync(spool, buffer, each, token);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task ForEachChunkAsync(IMessageSpool spool, byte[] buffer, Func<Unstuffed, CancellationToken, ValueTask> each, CancellationToken token)
    {
        await using var stream = spool.OpenRead();
        var parts = new List<ReadOnlyMemory<byte>>();
        var atLineStart = true;
        int read;
        while ((read = await stream.ReadAsync(buffer.AsMemory(0, Chunk), token)) > 0)
        {
            parts.Clear();
            var start = 0;
            var dropped = 0;
            for (var i = 0; i < read; i++)
            {
                if (atLineStart && buffer[i] == (byte)'.')
                {
                    parts.Add(buffer.AsMemory(start, i - start));
                    start = i + 1;
                    dropped++;
                }

                atLineStart = buffer[i] == (byte)'\n';
            }

            parts.Add(buffer.AsMemory(start, read - start));
            await each(new Unstuffed(parts, dropped), token);
        }
    }

    private readonly record struct Unstuffed(List<ReadOnlyMemory<byte>> Parts, int Dropped);
}
