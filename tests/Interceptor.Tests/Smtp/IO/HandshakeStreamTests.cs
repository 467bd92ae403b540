using Interceptor.Smtp.IO;

namespace Interceptor.Tests.Smtp.IO;

/// <summary>
/// During a TLS handshake a read that waited resumes on the thread pool, not on the thread that completed it (the
/// daemon's socket polling thread); after it, reads pass straight through.
/// </summary>
[TestFixture]
public class HandshakeStreamTests
{
    [Test]
    public async Task While_handshaking_a_read_completed_by_another_thread_resumes_on_the_thread_pool()
    {
        var (onPool, thread) = await ReadCompletedByDedicatedThread(handshaking: true);

        Assert.That(onPool, Is.True, $"resumed on {thread}");
    }

    [Test]
    public async Task A_handshake_started_in_a_sessions_blocking_work_resumes_every_read_there_not_on_the_pool()
    {
        // The session's context (the daemon's fair-share scheduler): the handshake's work (key exchange, a certificate
        // minted) is then done in its user's turn and charged to that user, not on the pool where no share counts it.
        using var turn = new TurnContext();
        var inner = new PendingStream();
        await using var stream = new HandshakeStream(inner, leaveInnerOpen: false);
        var resumed = new TaskCompletionSource<(bool, string?)>(TaskCreationOptions.RunContinuationsAsynchronously);
        turn.Post(_ => _ = ReadAndSay(stream, resumed), null);
        await turn.Idle();

        var completer = new Thread(() => inner.Complete(5)) { Name = "completer" };
        completer.Start();
        completer.Join();
        var (onPool, thread) = await resumed.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That((onPool, thread), Is.EqualTo((false, "turn")), "resumed in the session's context, posted to it");
        Assert.That(turn.Posts, Is.EqualTo(2), "the test's own item, then the read's end");
    }

    [Test]
    public async Task The_sessions_context_is_kept_for_the_later_reads_and_for_what_the_handshake_waited_for_elsewhere()
    {
        // SslStream makes its later reads from where the last one resumed, with no context current there, and its
        // certificate callback may wait for a minting that ends on a pool thread: all of it goes on in the session's turn.
        using var turn = new TurnContext();
        var inner = new PendingStream();
        inner.Complete(5);
        await using var stream = new HandshakeStream(inner, leaveInnerOpen: false);
        var seen = new TaskCompletionSource<string?[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        turn.Post(_ => _ = Steps(), null);

        Assert.That(await seen.Task.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo(new[] { "turn", null, "turn", "turn" }));

        async Task Steps()
        {
            var where = new string?[4];
            await stream.ReadAsync(new byte[16]).ConfigureAwait(false);
            where[0] = Thread.CurrentThread.Name;
            where[1] = SynchronizationContext.Current?.GetType().Name;
            await stream.ReadAsync(new byte[16]).ConfigureAwait(false);
            where[2] = Thread.CurrentThread.Name;
            await Task.Run(() => { }).ConfigureAwait(false);
            await stream.BackToSession();
            where[3] = Thread.CurrentThread.Name;
            seen.SetResult(where);
        }
    }

    private static async Task ReadAndSay(HandshakeStream stream, TaskCompletionSource<(bool, string?)> resumed) =>
        resumed.SetResult(await Resume(stream).ConfigureAwait(false));

    [Test]
    public async Task After_the_handshake_a_read_resumes_where_it_was_completed()
    {
        var (onPool, thread) = await ReadCompletedByDedicatedThread(handshaking: false);

        Assert.That(onPool, Is.False);
        Assert.That(thread, Is.EqualTo("completer"), "no hop once the handshake is done");
    }

    [Test]
    public async Task While_handshaking_even_a_read_that_completed_at_once_resumes_on_the_thread_pool()
    {
        // A ClientHello sent right behind STARTTLS is already there: the server's first flight must not run in the step.
        // The inner read completes at once; the rest is handed to the pool, so ReadAsync returns before it is done. A pool
        // thread may finish it before the caller looks (one try in about thirty here), so it is tried up to five times: a
        // read that is not handed on is complete in the call every time.
        var handedOn = 0;
        for (var attempt = 0; attempt < 5 && handedOn == 0; attempt++)
        {
            await using var stream = new HandshakeStream(new MemoryStream("hello"u8.ToArray()), leaveInnerOpen: false);
            var (completedInCall, read) = await Task.Factory.StartNew(() =>
            {
                var pending = stream.ReadAsync(new byte[64]);
                return (pending.IsCompleted, pending.AsTask());
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            Assert.That(await read, Is.EqualTo(5));
            handedOn += completedInCall ? 0 : 1;
        }

        Assert.That(handedOn, Is.EqualTo(1), "the read's end was handed to the thread pool, not run in the caller's step");
    }

    [Test]
    public async Task After_the_handshake_a_read_that_is_already_complete_returns_at_once_and_the_bytes_arrive()
    {
        await using var stream = new HandshakeStream(new MemoryStream("220 ready\r\n"u8.ToArray()), leaveInnerOpen: false) { Handshaking = false };
        var buffer = new byte[64];

        var read = stream.ReadAsync(buffer);

        Assert.That(read.IsCompleted, Is.True);
        Assert.That(System.Text.Encoding.ASCII.GetString(buffer, 0, await read), Is.EqualTo("220 ready\r\n"));
    }

    [Test]
    public async Task The_inner_stream_is_left_open_when_asked()
    {
        var inner = new MemoryStream();
        await new HandshakeStream(inner, leaveInnerOpen: true).DisposeAsync();
        Assert.That(inner.CanWrite, Is.True);

        await new HandshakeStream(inner, leaveInnerOpen: false).DisposeAsync();
        Assert.That(inner.CanWrite, Is.False);
    }

    private static async Task<(bool OnPool, string? Thread)> ReadCompletedByDedicatedThread(bool handshaking)
    {
        var inner = new PendingStream();
        await using var stream = new HandshakeStream(inner, leaveInnerOpen: false) { Handshaking = handshaking };
        var reading = Resume(stream);
        var completer = new Thread(() => inner.Complete(5)) { Name = "completer" };
        completer.Start();
        completer.Join();
        return await reading;
    }

    private static async Task<(bool, string?)> Resume(HandshakeStream stream)
    {
        // As SslStream awaits its inner stream: no context captured.
        var count = await stream.ReadAsync(new byte[16]).ConfigureAwait(false);
        Assert.That(count, Is.EqualTo(5));
        return (Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name);
    }

    /// <summary>A read that waits until <see cref="Complete"/>, whose caller's continuation runs on the completing thread.</summary>
    private sealed class PendingStream : Stream
    {
        private readonly TaskCompletionSource<int> _read = new();

        public void Complete(int count) => _read.SetResult(count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(_read.Task);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
