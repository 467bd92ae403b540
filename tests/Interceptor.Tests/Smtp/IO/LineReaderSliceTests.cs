using Interceptor.Core.Threading;
using Interceptor.Smtp.IO;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.IO;

/// <summary>
/// A line reader gives its thread up after a slice of reading without a wait (ThreadBudget), counted within one call: a
/// reused upstream's reader that sat unused since the previous message's reply reads the next one at once. In a
/// session's flow a yield goes into the session's turn (its lane, a recording fake here), which shows whether it happened.
/// </summary>
[TestFixture]
[CancelAfter(20_000)]
public sealed class LineReaderSliceTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(10);

    [Test]
    public async Task A_line_already_there_after_the_reader_sat_unused_for_many_slices_is_read_without_a_yield()
    {
        // Three tries: one stall of the test's thread by a loaded machine inside the call must not fail the test, and a
        // reader that counted from its last wait (20 slices ago) would yield in every one.
        var lane = new RecordingStepLane { GoOn = true };
        var yields = new List<bool>();
        for (var attempt = 0; attempt < 3; attempt++)
        {
            yields.Add(await Task.Run(async () =>
            {
                using var reader = new LineReader(new ChunkStream("250 first\r\n"u8.ToArray(), "250 second\r\n"u8.ToArray()), waitWithoutBuffer: false);

                // Outside the session's flow, so that a yield here (the first call's JIT) goes to the pool and comes back.
                await reader.ReadLineAsync(512, Long, CancellationToken.None);

                // The previous message's reply was a while ago; this one is in the socket already (a synchronous read).
                Thread.Sleep(ThreadBudget.Slice * 20);
                StepLanes.Current = lane;
                var reading = reader.ReadLineAsync(512, Long, CancellationToken.None);
                if (!reading.IsCompleted)
                {
                    return true;
                }

                Assert.That(await reading, Is.EqualTo(new Line(LineStatus.Ok, "250 second")));
                return false;
            }));
        }

        Assert.That(yields, Has.Some.False, "the slice counts from this call, not from the reader's last wait");
        Assert.That(lane.SlicesUsed, Is.EqualTo(yields.Count(y => y)));
    }

    [Test]
    public async Task A_line_that_never_ends_within_one_call_still_gives_the_thread_up()
    {
        // The peer keeps the buffer full and never sends a LF: every read completes at once.
        var lane = new RecordingStepLane { GoOn = true };
        var (yielded, told) = await Task.Run(() =>
        {
            StepLanes.Current = lane;
            var reader = new LineReader(new EndlessStream(), waitWithoutBuffer: false);
            var reading = reader.ReadLineAsync(64, Long, CancellationToken.None);
            return (!reading.IsCompleted, lane.SlicesUsed);
        });

        Assert.That(yielded, Is.True, "queued into the session's turn after a slice");
        Assert.That(lane.Queued, Has.Count.EqualTo(1));
        Assert.That(told, Is.EqualTo(1), "and the lane told");
    }

    /// <summary>Each read returns the next chunk at once; then the end of the stream.</summary>
    private sealed class ChunkStream(params byte[][] chunks) : SynchronousReadStream
    {
        private int _next;

        public override int Read(Span<byte> buffer)
        {
            if (_next == chunks.Length || buffer.Length == 0)
            {
                return 0;
            }

            var chunk = chunks[_next++];
            chunk.CopyTo(buffer);
            return chunk.Length;
        }
    }

    /// <summary>Bytes with no LF, forever, each read taking a while (a loaded machine), and completing at once.</summary>
    private sealed class EndlessStream : SynchronousReadStream
    {
        public override int Read(Span<byte> buffer)
        {
            Thread.Sleep(ThreadBudget.Slice * 2);
            buffer[..Math.Min(16, buffer.Length)].Fill((byte)'x');
            return Math.Min(16, buffer.Length);
        }
    }

    /// <summary>A read-only stream whose asynchronous reads complete at once, as a socket's with bytes already there.</summary>
    private abstract class SynchronousReadStream : Stream
    {
        public abstract override int Read(Span<byte> buffer);

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
