using System.Net.Sockets;
using System.Text;
using Interceptor.Smtp.IO;

namespace Interceptor.Tests.Smtp.IO;

/// <summary>
/// Issue 19: an idle session holds no read buffer. The reader rents its buffer only while bytes are there and waits for
/// them with a zero-byte read; the limits it enforced before (idle, trickled line, end of stream) are unchanged.
/// </summary>
[TestFixture]
[CancelAfter(20_000)]
public sealed class LineReaderTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(10);

    [Test]
    public async Task A_new_reader_and_one_that_consumed_everything_hold_no_buffer()
    {
        using var reader = new LineReader(new MemoryStream("EHLO client.test\r\n"u8.ToArray()));
        Assert.That(reader.HoldsBuffer, Is.False, "nothing rented before anything was read");

        var line = await reader.ReadLineAsync(512, Long, CancellationToken.None);

        Assert.That(line, Is.EqualTo(new Line(LineStatus.Ok, "EHLO client.test")));
        Assert.That(reader.HoldsBuffer, Is.False, "the buffer went back to the pool with its last byte consumed");
        Assert.That(reader.Buffered.Length, Is.Zero);
    }

    [Test]
    public async Task Bytes_left_after_a_line_keep_the_buffer_until_they_are_consumed()
    {
        using var reader = new LineReader(new MemoryStream("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"u8.ToArray()));

        await reader.ReadLineAsync(512, Long, CancellationToken.None);
        Assert.That(reader.HoldsBuffer, Is.True, "the pipelined RCPT is still in it");
        Assert.That(Encoding.ASCII.GetString(reader.Buffered), Is.EqualTo("RCPT TO:<c@d>\r\n"));

        reader.Advance(5);
        Assert.That(reader.HoldsBuffer, Is.True, "part consumed: the rest stays");
        reader.Advance(reader.Buffered.Length);
        Assert.That(reader.HoldsBuffer, Is.False);
        Assert.That(reader.HasBufferedData, Is.False);
    }

    [Test]
    public async Task An_empty_reader_waits_with_a_zero_byte_read_then_reads_into_a_buffer()
    {
        var stream = new RecordingStream("QUIT\r\n"u8.ToArray());
        using var reader = new LineReader(stream);

        await reader.ReadLineAsync(512, Long, CancellationToken.None);

        Assert.That(stream.ReadSizes, Has.Count.GreaterThanOrEqualTo(2));
        Assert.That(stream.ReadSizes[0], Is.Zero, "the wait holds no buffer");
        Assert.That(stream.ReadSizes[1], Is.GreaterThanOrEqualTo(16 * 1024), "then the pooled buffer");
    }

    [Test]
    public async Task Without_the_zero_byte_wait_the_first_read_goes_straight_into_the_buffer()
    {
        var stream = new RecordingStream("250 ok\r\n"u8.ToArray());
        using var reader = new LineReader(stream, 8 * 1024, waitWithoutBuffer: false);

        await reader.ReadLineAsync(512, Long, CancellationToken.None);

        Assert.That(stream.ReadSizes[0], Is.GreaterThanOrEqualTo(8 * 1024));
        Assert.That(reader.HoldsBuffer, Is.False, "returned once the reply was consumed all the same");
    }

    [Test]
    public async Task While_waiting_on_an_idle_socket_no_buffer_is_held_and_the_line_is_read_when_it_comes([Values] bool nonBlocking)
    {
        using var pair = await LoopbackPair.OpenAsync();
        pair.Server.Socket.Blocking = !nonBlocking;
        using var reader = new LineReader(pair.Server);

        var pending = reader.ReadLineAsync(512, Long, CancellationToken.None).AsTask();
        await Task.Delay(200);
        Assert.That(pending.IsCompleted, Is.False);
        Assert.That(reader.HoldsBuffer, Is.False, "an idle session holds no buffer");

        await pair.Client.WriteAsync("NOOP\r\n"u8.ToArray());
        var line = await pending;

        Assert.That(line, Is.EqualTo(new Line(LineStatus.Ok, "NOOP")));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    [Test]
    public async Task The_idle_timeout_still_ends_a_wait_that_holds_no_buffer()
    {
        using var pair = await LoopbackPair.OpenAsync();
        using var reader = new LineReader(pair.Server);

        Assert.ThrowsAsync<TimeoutException>(async () => await reader.ReadLineAsync(512, TimeSpan.FromMilliseconds(300), CancellationToken.None));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    [Test]
    public async Task A_trickled_line_still_times_out_and_holds_only_the_bytes_it_brought()
    {
        using var pair = await LoopbackPair.OpenAsync();
        using var reader = new LineReader(pair.Server);

        var pending = reader.ReadLineAsync(512, Long, CancellationToken.None, lineTimeout: TimeSpan.FromMilliseconds(500)).AsTask();
        await pair.Client.WriteAsync("MAIL FR"u8.ToArray());
        await Task.Delay(200);
        Assert.That(reader.HoldsBuffer, Is.True, "a line that has begun is held while it arrives");

        Assert.ThrowsAsync<LineTimeoutException>(async () => await pending);
    }

    [Test]
    public async Task The_end_of_stream_while_waiting_is_reported_and_leaves_no_buffer([Values] bool nonBlocking)
    {
        using var pair = await LoopbackPair.OpenAsync();
        pair.Server.Socket.Blocking = !nonBlocking;
        using var reader = new LineReader(pair.Server);

        var pending = reader.ReadLineAsync(512, Long, CancellationToken.None).AsTask();
        pair.Client.Socket.Shutdown(SocketShutdown.Send);

        Assert.That((await pending).Status, Is.EqualTo(LineStatus.EndOfStream));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    [Test]
    public async Task Over_a_non_blocking_socket_lines_already_there_are_taken_at_once_and_the_buffer_goes_back()
    {
        // The listener's sockets: one receive takes what has arrived (the zero-byte wait would peek first).
        using var received = await NonBlockingWithBytesWaitingAsync("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"u8.ToArray());
        var (pair, reader) = received;

        var first = reader.ReadLineAsync(512, Long, CancellationToken.None);
        Assert.That(first.IsCompleted, Is.True, "taken without waiting");
        Assert.That(await first, Is.EqualTo(new Line(LineStatus.Ok, "MAIL FROM:<a@example.com>")));
        Assert.That(await reader.ReadLineAsync(512, Long, CancellationToken.None), Is.EqualTo(new Line(LineStatus.Ok, "RCPT TO:<b@example.com>")));
        Assert.That(reader.HoldsBuffer, Is.False, "both lines consumed: the buffer went back");

        var end = reader.ReadLineAsync(512, Long, CancellationToken.None).AsTask();
        Assert.That(end.IsCompleted, Is.False, "nothing more: it waits");
        Assert.That(reader.HoldsBuffer, Is.False, "and holds no buffer while it does");
        pair.Client.Socket.Shutdown(SocketShutdown.Send);
        Assert.That((await end).Status, Is.EqualTo(LineStatus.EndOfStream));
    }

    [Test]
    public async Task A_fill_that_had_to_wait_drops_the_receive_tried_first_until_a_wait_finds_the_bytes_there()
    {
        // Lock-step: the next command comes a round trip after the reply, so a receive tried first mostly fails.
        using var pair = await LoopbackPair.OpenAsync();
        using var server = new WaitCountingStream(pair.Server.Socket);
        pair.Server.Socket.Blocking = false;
        using var reader = new LineReader(server);

        var first = reader.ReadLineAsync(512, Long, CancellationToken.None).AsTask();
        await Task.Delay(100);
        await pair.Client.WriteAsync("EHLO a\r\n"u8.ToArray());
        Assert.That(await first, Is.EqualTo(new Line(LineStatus.Ok, "EHLO a")));
        Assert.That((server.Waits, server.WaitsDoneAtOnce), Is.EqualTo((1, 0)), "nothing there: the try failed, the wait waited");

        await SendAndLetArriveAsync(pair, "MAIL FROM:<a@example.com>\r\n");
        Assert.That(await reader.ReadLineAsync(512, Long, CancellationToken.None), Is.EqualTo(new Line(LineStatus.Ok, "MAIL FROM:<a@example.com>")));
        Assert.That((server.Waits, server.WaitsDoneAtOnce), Is.EqualTo((2, 1)), "after a wait no receive is tried first: the zero-byte wait finds the bytes");

        await SendAndLetArriveAsync(pair, "RCPT TO:<b@example.com>\r\n");
        Assert.That(await reader.ReadLineAsync(512, Long, CancellationToken.None), Is.EqualTo(new Line(LineStatus.Ok, "RCPT TO:<b@example.com>")));
        Assert.That(server.Waits, Is.EqualTo(2), "the last wait found the bytes there: one receive again, no wait");
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    [Test]
    public async Task Over_a_non_blocking_socket_an_end_of_stream_already_there_is_reported_at_once()
    {
        using var received = await NonBlockingWithBytesWaitingAsync("QUIT\r\n"u8.ToArray(), thenEnd: true);
        var reader = received.Reader;

        Assert.That(await reader.ReadLineAsync(512, Long, CancellationToken.None), Is.EqualTo(new Line(LineStatus.Ok, "QUIT")));
        Assert.That((await reader.ReadLineAsync(512, Long, CancellationToken.None)).Status, Is.EqualTo(LineStatus.EndOfStream));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    [Test]
    public async Task A_cancelled_read_reads_nothing_even_with_bytes_waiting_on_a_non_blocking_socket()
    {
        // A session past its time limit, or the daemon shutting down: a client that always has more to send (an endless
        // line) must not keep it reading.
        using var received = await NonBlockingWithBytesWaitingAsync("NOOP\r\n"u8.ToArray());
        var (pair, reader) = received;
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), async () => await reader.ReadLineAsync(512, Long, cancelled.Token));
        Assert.That(reader.HoldsBuffer, Is.False);
        Assert.That(pair.Server.Socket.Available, Is.EqualTo(6), "the bytes are still the socket's");
    }

    [Test]
    public async Task A_reset_connection_is_an_IOException_whether_the_socket_blocks_or_not([Values] bool nonBlocking)
    {
        using var pair = await LoopbackPair.OpenAsync();
        pair.Server.Socket.Blocking = !nonBlocking;
        using var reader = new LineReader(pair.Server);
        pair.Client.Socket.LingerState = new LingerOption(true, 0);
        pair.Client.Socket.Close();
        await Task.Delay(100);

        Assert.ThrowsAsync(Is.InstanceOf<IOException>(), async () => await reader.ReadLineAsync(512, Long, CancellationToken.None));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    /// <summary>A reader over a non-blocking server socket (as the listener makes them) with <paramref name="bytes"/>
    /// already received, and the client's end of stream after them if <paramref name="thenEnd"/>.</summary>
    private static async Task<ReceivedBytes> NonBlockingWithBytesWaitingAsync(byte[] bytes, bool thenEnd = false)
    {
        var pair = await LoopbackPair.OpenAsync();
        pair.Server.Socket.Blocking = false;
        await pair.Client.WriteAsync(bytes);
        if (thenEnd)
        {
            pair.Client.Socket.Shutdown(SocketShutdown.Send);
        }

        for (var i = 0; i < 200 && pair.Server.Socket.Available < bytes.Length; i++)
        {
            await Task.Delay(10);
        }

        Assert.That(pair.Server.Socket.Available, Is.EqualTo(bytes.Length), "the bytes arrived");
        return new ReceivedBytes(pair, new LineReader(pair.Server));
    }

    private static async Task SendAndLetArriveAsync(LoopbackPair pair, string line)
    {
        var available = pair.Server.Socket.Available + line.Length;
        await pair.Client.WriteAsync(Encoding.ASCII.GetBytes(line));
        for (var i = 0; i < 200 && pair.Server.Socket.Available < available; i++)
        {
            await Task.Delay(10);
        }

        Assert.That(pair.Server.Socket.Available, Is.EqualTo(available), "the bytes arrived");
    }

    /// <summary>The server's socket as the reader sees it, counting the zero-byte waits and those done at once.</summary>
    private sealed class WaitCountingStream(Socket socket) : NetworkStream(socket, ownsSocket: false)
    {
        public int Waits { get; private set; }

        public int WaitsDoneAtOnce { get; private set; }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = base.ReadAsync(buffer, cancellationToken);
            if (buffer.IsEmpty)
            {
                Waits++;
                WaitsDoneAtOnce += read.IsCompleted ? 1 : 0;
            }

            return read;
        }
    }

    /// <summary>The pair and its reader, disposed together.</summary>
    private sealed record ReceivedBytes(LoopbackPair Pair, LineReader Reader) : IDisposable
    {
        public void Dispose()
        {
            Reader.Dispose();
            Pair.Dispose();
        }
    }

    [Test]
    public async Task A_line_longer_than_the_limit_is_still_discarded_up_to_its_end()
    {
        var wire = new string('x', 3000) + "\r\nNOOP\r\n";
        using var reader = new LineReader(new MemoryStream(Encoding.ASCII.GetBytes(wire)), 1024);

        Assert.That((await reader.ReadLineAsync(512, Long, CancellationToken.None)).Status, Is.EqualTo(LineStatus.TooLong));
        Assert.That(await reader.ReadLineAsync(512, Long, CancellationToken.None), Is.EqualTo(new Line(LineStatus.Ok, "NOOP")));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    [Test]
    public void A_disposed_reader_refuses_to_read()
    {
        var reader = new LineReader(new MemoryStream("NOOP\r\n"u8.ToArray()));
        reader.Dispose();

        Assert.ThrowsAsync<ObjectDisposedException>(async () => await reader.FillAsync(Long, CancellationToken.None));
        Assert.That(reader.HoldsBuffer, Is.False);
    }

    /// <summary>A stream over fixed bytes that records how large each read's buffer was.</summary>
    private sealed class RecordingStream(byte[] data) : MemoryStream(data)
    {
        public List<int> ReadSizes { get; } = [];

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ReadSizes.Add(buffer.Length);
            return base.ReadAsync(buffer, cancellationToken);
        }
    }
}
