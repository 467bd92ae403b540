using System.Text;
using Interceptor.Smtp.Data;

namespace Interceptor.Tests.Smtp.Data;

/// <summary>The DATA path as the session runs it: the smuggling filter, then the header-section guard, in chunks.</summary>
public class HeaderSectionGuardTests
{
    /// <summary>Runs client DATA bytes through filter and guard in chunks of <paramref name="chunk"/> bytes.</summary>
    private static (string Output, HeaderSectionGuard Guard) Run(string input, int chunk)
    {
        var bytes = Encoding.Latin1.GetBytes(input);
        var filter = new DataStreamFilter(long.MaxValue, 65536);
        var guard = new HeaderSectionGuard();
        var scratch = new byte[DataStreamFilter.OutputSizeFor(chunk)];
        var output = new byte[HeaderSectionGuard.OutputSizeFor(scratch.Length)];
        var result = new MemoryStream();
        var offset = 0;
        while (offset < bytes.Length && !filter.Completed)
        {
            var (consumed, filtered) = filter.Process(bytes.AsSpan(offset, Math.Min(chunk, bytes.Length - offset)), scratch);
            var written = guard.Process(scratch.AsSpan(0, filtered), output);
            result.Write(output, 0, written);
            offset += consumed;
        }

        Assert.That(filter.Completed, Is.True, "the test input must end with CRLF.CRLF");
        return (Encoding.Latin1.GetString(result.ToArray()), guard);
    }

    private static IEnumerable<int> Chunks => [1, 2, 3, 5, 7, 11, 13, 21, 22, 23, 4096];

    [Test]
    public void A_clean_message_passes_byte_for_byte_whatever_the_chunking([ValueSource(nameof(Chunks))] int chunk)
    {
        const string message = "From: <a@b.test>\r\nX-Interceptor-Originator: kept\r\nX-Interceptor: kept\r\n ..folded\r\n\r\n" +
            "X-Interceptor-Origin: in the body, not a header\r\n..dot\r\n";

        var (output, guard) = Run(message + ".\r\n", chunk);

        Assert.That(output, Is.EqualTo(message));
        Assert.That(guard.Renamed, Is.Zero);
        Assert.That(guard.Problem, Is.EqualTo(DataProblem.None));
    }

    /// <summary>Every chunk size puts a boundary somewhere inside the name, the colon or the continuation.</summary>
    [Test]
    public void A_client_origin_header_is_renamed_with_its_continuation_whatever_the_chunking([ValueSource(nameof(Chunks))] int chunk)
    {
        const string message = "Subject: x\r\nX-Interceptor-Origin: uid=0 user=root;\r\n host=trusted-relay.example\r\n" +
            "x-INTERCEPTOR-origin  : uid=0\r\nX-Interceptor-Origin\t: uid=0\r\n.X-Interceptor-Origin: uid=0\r\n\r\nbody\r\n";

        var (output, guard) = Run(message + ".\r\n", chunk);

        Assert.That(output, Is.EqualTo(
            "Subject: x\r\nX-Interceptor-Client-Origin: uid=0 user=root;\r\n host=trusted-relay.example\r\n" +
            "x-INTERCEPTOR-Client-origin  : uid=0\r\nX-Interceptor-Client-Origin\t: uid=0\r\n.X-Interceptor-Client-Origin: uid=0\r\n\r\nbody\r\n"));
        Assert.That(guard.Renamed, Is.EqualTo(4));
    }

    [Test]
    public void A_name_held_across_chunks_that_turns_out_different_is_released_unchanged([ValueSource(nameof(Chunks))] int chunk)
    {
        const string message = "X-Interceptor-OriginX: a\r\nX-Interceptor-Origi\r\n..X-Interceptor-Origin: dot-dot is another name\r\n\r\n";

        var (output, guard) = Run(message + ".\r\n", chunk);

        Assert.That(output, Is.EqualTo(message));
        Assert.That(guard.Renamed, Is.Zero);
    }

    [TestCase(" uid=0 user=root; host=trusted-relay.example\r\nSubject: x\r\n\r\nbody\r\n")]
    [TestCase("\tuid=0\r\n\r\nbody\r\n")]
    [TestCase(". uid=0 (the receiver removes the transparency dot)\r\n\r\nbody\r\n")]
    public void A_first_line_that_would_fold_into_the_trace_header_is_a_problem_and_nothing_is_written(string message)
    {
        foreach (var chunk in Chunks)
        {
            var (output, guard) = Run(message + ".\r\n", chunk);

            Assert.That(guard.Problem, Is.EqualTo(DataProblem.FoldsIntoTraceHeader), $"chunk {chunk}");
            Assert.That(output, Is.Empty, $"chunk {chunk}");
        }
    }

    [TestCase("\r\n body after an empty header section may start with a space\r\n")]
    [TestCase("Subject: x\r\n continued\r\n\r\n")]
    [TestCase("")]
    public void Continuation_lines_elsewhere_are_ordinary(string message)
    {
        var (output, guard) = Run(message + ".\r\n", 3);

        Assert.That(guard.Problem, Is.EqualTo(DataProblem.None));
        Assert.That(output, Is.EqualTo(message));
    }

    [Test]
    public void A_bare_lf_message_is_guarded_after_normalisation()
    {
        var (output, guard) = Run("X-Interceptor-Origin: uid=0\n\nbody\r\n.\r\n", 4);

        Assert.That(output, Is.EqualTo("X-Interceptor-Client-Origin: uid=0\r\n\r\nbody\r\n"));
        Assert.That(guard.Renamed, Is.EqualTo(1));
    }

    [Test]
    public void The_output_bound_holds_for_a_chunk_full_of_forged_headers()
    {
        var forged = string.Concat(Enumerable.Repeat("X-Interceptor-Origin:\r\n", 3000));
        var input = Encoding.ASCII.GetBytes(forged);
        var guard = new HeaderSectionGuard();
        var output = new byte[HeaderSectionGuard.OutputSizeFor(input.Length)];

        var written = guard.Process(input, output);

        Assert.That(written, Is.EqualTo(input.Length + (3000 * "Client-".Length)));
    }
}
