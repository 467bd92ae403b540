using System.Collections.Concurrent;
using System.Text;
using Interceptor.Daemon.Hosting;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>
/// Log lines leave in batches from the writer's own thread: a line after a quiet spell at once, lines logged while the
/// thread lingers together, none lost, none cut, in order per logging thread, and a blocked output holds loggers back
/// rather than losing their lines.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public class ConsoleLineWriterTests
{
    private static StringBuilder Line(string text) => new StringBuilder(text).Append('\n');

    [Test]
    public void Lines_logged_while_the_thread_lingers_leave_in_one_batch_and_a_first_line_at_once()
    {
        var output = new RecordingWriter();
        using var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromSeconds(2));

        writer.Append(Line("first"));
        Assert.That(SpinWait.SpinUntil(() => output.Writes.Count == 1, TimeSpan.FromSeconds(1)), Is.True,
            "a line after a quiet spell is written without waiting for the linger");

        for (var i = 0; i < 1000; i++)
        {
            writer.Append(Line("line " + i));
        }

        // The thread counts a batch after its write returns: wait for the count, then look at the writes.
        Assert.That(SpinWait.SpinUntil(() => writer.Batches >= 2, TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(writer.Batches, Is.EqualTo(2), "1,000 lines logged during the linger: one write, not one each");
        Assert.That(output.Writes, Has.Count.EqualTo(2));
        Assert.That(output.Writes.ElementAt(1).Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(Enumerable.Range(0, 1000).Select(i => "line " + i)));
    }

    [Test]
    public void After_a_quiet_spell_the_thread_does_not_linger()
    {
        var output = new RecordingWriter();
        using var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromSeconds(1));
        writer.Append(Line("a"));
        Assert.That(SpinWait.SpinUntil(() => output.Writes.Count == 1, TimeSpan.FromSeconds(5)), Is.True);

        Thread.Sleep(TimeSpan.FromSeconds(2.5)); // the linger after "a", then a longer quiet spell
        writer.Append(Line("b"));
        Assert.That(SpinWait.SpinUntil(() => output.Writes.Count == 2, TimeSpan.FromSeconds(5)), Is.True);
        writer.Append(Line("c"));

        Assert.That(SpinWait.SpinUntil(() => output.Writes.Count == 3, TimeSpan.FromMilliseconds(500)), Is.True,
            "a line after a quiet spell is not followed by a linger: the next line goes at once");
    }

    [Test]
    public void Lines_from_many_threads_arrive_whole_and_in_order_per_thread()
    {
        const int threads = 8;
        const int perThread = 5000;
        var output = new RecordingWriter();
        using (var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromMilliseconds(1), maxPendingChars: 4096))
        {
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                for (var i = 0; i < perThread; i++)
                {
                    writer.Append(Line($"{t} {i} {new string('x', i % 300)}"));
                }
            });
        }

        var lines = string.Concat(output.Writes).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(threads * perThread), "disposal wrote every line");
        foreach (var group in lines.Select(l => l.Split(' ')).GroupBy(p => p[0]))
        {
            Assert.That(group.Select(p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)), Is.EqualTo(Enumerable.Range(0, perThread)),
                "thread " + group.Key + "'s lines in order");
            Assert.That(group.All(p => p[2].Length == int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture) % 300), "no line cut");
        }
    }

    [Test]
    public void A_blocked_output_holds_loggers_back_past_the_cap_and_loses_nothing()
    {
        using var release = new ManualResetEventSlim();
        var output = new RecordingWriter(release);
        using var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromMilliseconds(1), maxPendingChars: 100);

        writer.Append(Line("blocks the output"));
        Assert.That(SpinWait.SpinUntil(() => output.Blocked, TimeSpan.FromSeconds(5)), Is.True);
        var logger = Task.Run(() =>
        {
            for (var i = 0; i < 20; i++)
            {
                writer.Append(Line("waiting line " + i)); // 16 characters each: the cap holds 6
            }
        });

        Assert.That(logger.Wait(TimeSpan.FromMilliseconds(500)), Is.False, "the logger waits for room");
        release.Set();
        Assert.That(logger.Wait(TimeSpan.FromSeconds(10)), Is.True, "and goes on once the output takes lines again");
        writer.Dispose();

        var lines = string.Concat(output.Writes).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.EqualTo(new[] { "blocks the output" }.Concat(Enumerable.Range(0, 20).Select(i => "waiting line " + i))));
    }

    [Test]
    public void Disposal_writes_what_lingers_and_later_lines_are_written_by_their_callers()
    {
        var output = new RecordingWriter();
        var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromMinutes(5));
        writer.Append(Line("first"));
        Assert.That(SpinWait.SpinUntil(() => output.Writes.Count == 1, TimeSpan.FromSeconds(5)), Is.True);
        writer.Append(Line("lingering"));

        var disposal = Task.Run(writer.Dispose);
        Assert.That(disposal.Wait(TimeSpan.FromSeconds(5)), Is.True, "disposal does not wait out the linger");
        writer.Append(Line("after"));

        Assert.That(string.Concat(output.Writes), Is.EqualTo("first\nlingering\nafter\n"));
    }

    /// <summary>Records each batch; with a gate, the first write blocks until it is set.</summary>
    [Test]
    public void A_full_buffer_ends_the_threads_linger()
    {
        var output = new RecordingWriter();
        using var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromSeconds(30), maxPendingChars: 100);
        writer.Append(Line("first"));
        Assert.That(SpinWait.SpinUntil(() => output.Writes.Count == 1, TimeSpan.FromSeconds(5)), Is.True, "written, then the thread lingers");

        var logger = Task.Run(() =>
        {
            for (var i = 0; i < 20; i++)
            {
                writer.Append(Line("waiting line " + i)); // 16 characters each: the cap holds 6
            }
        });

        Assert.That(logger.Wait(TimeSpan.FromSeconds(10)), Is.True, "the logger that found the buffer full did not wait out the 30 s linger");
    }

    [Test]
    public void After_a_disposal_that_gave_up_on_a_blocked_output_a_line_does_not_block_its_logger()
    {
        using var release = new ManualResetEventSlim();
        var output = new RecordingWriter(release);
        var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromMilliseconds(1), disposeWait: TimeSpan.FromMilliseconds(200));
        try
        {
            writer.Append(Line("blocks the output for good"));
            Assert.That(SpinWait.SpinUntil(() => output.Blocked, TimeSpan.FromSeconds(5)), Is.True);
            Assert.That(Task.Run(writer.Dispose).Wait(TimeSpan.FromSeconds(10)), Is.True, "disposal gives up on the output");

            var logger = Task.Run(() => writer.Append(Line("after")));
            Assert.That(logger.Wait(TimeSpan.FromSeconds(5)), Is.True, "the line is dropped, not written into the blocked output");
        }
        finally
        {
            release.Set();
        }
    }

    private sealed class RecordingWriter(ManualResetEventSlim? gate = null) : TextWriter
    {
        private readonly StringBuilder _current = new();

        public ConcurrentQueue<string> Writes { get; } = new();

        public volatile bool Blocked;

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value) => _current.Append(value);

        public override void Write(ReadOnlySpan<char> buffer) => _current.Append(buffer);

        public override void Flush()
        {
            if (gate is not null && !gate.IsSet)
            {
                Blocked = true;
                gate.Wait();
            }

            Writes.Enqueue(_current.ToString());
            _current.Clear();
        }
    }
}
