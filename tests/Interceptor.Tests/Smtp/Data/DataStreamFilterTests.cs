using System.Text;
using Interceptor.Smtp.Data;

namespace Interceptor.Tests.Smtp.Data;

public class DataStreamFilterTests
{
    private const long Unlimited = long.MaxValue;

    /// <summary>Runs the whole input through the filter in chunks of the given size.</summary>
    private static (string Output, DataStreamFilter Filter, int Consumed) Run(string input, int chunk = 4096, long max = Unlimited, int maxLine = 65536)
    {
        var bytes = Encoding.Latin1.GetBytes(input);
        var filter = new DataStreamFilter(max, maxLine);
        var output = new MemoryStream();
        var offset = 0;
        var buffer = new byte[DataStreamFilter.OutputSizeFor(chunk)];
        while (offset < bytes.Length && !filter.Completed)
        {
            var slice = bytes.AsSpan(offset, Math.Min(chunk, bytes.Length - offset));
            var (consumed, written) = filter.Process(slice, buffer);
            output.Write(buffer, 0, written);
            offset += consumed;
        }

        return (Encoding.Latin1.GetString(output.ToArray()), filter, offset);
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4096)]
    public void A_clean_message_passes_byte_for_byte_whatever_the_chunking(int chunk)
    {
        const string body = "Subject: hi\r\n\r\n..leading dot stuffed\r\nline\r\n.\r\n";
        var (output, filter, consumed) = Run(body + "QUIT\r\n", chunk);

        Assert.That(output, Is.EqualTo("Subject: hi\r\n\r\n..leading dot stuffed\r\nline\r\n"));
        Assert.That(filter.Completed, Is.True);
        Assert.That(filter.Problem, Is.EqualTo(DataProblem.None));
        Assert.That(consumed, Is.EqualTo(body.Length), "stops right after the end of data; QUIT stays for the command reader");
        Assert.That(filter.Size, Is.EqualTo(body.Length - 3 - 1), "the end marker and the transparency dot do not count");
    }

    [Test]
    public void Transparency_dots_do_not_count_towards_the_size_limit()
    {
        // 10 lines of ".abc\r\n": 70 bytes on the wire, 60 bytes of message (RFC 1870).
        var body = string.Concat(Enumerable.Repeat("..abc\r\n", 10));
        var (_, filter, _) = Run(body + ".\r\n", max: 60);

        Assert.That(filter.Size, Is.EqualTo(60));
        Assert.That(filter.Problem, Is.EqualTo(DataProblem.None));
    }

    [Test]
    public void An_empty_message_ends_at_the_first_dot_line()
    {
        var (output, filter, _) = Run(".\r\n");

        Assert.That(output, Is.Empty);
        Assert.That(filter.Completed, Is.True);
        Assert.That(filter.Size, Is.Zero);
    }

    [Test]
    public void The_first_line_keeps_its_stuffing_for_the_upstream_to_remove()
    {
        var (output, _, _) = Run("..first\r\n.\r\n");

        Assert.That(output, Is.EqualTo("..first\r\n"));
    }

    [Test]
    public void Bare_line_feeds_are_normalised_to_crlf()
    {
        var (output, filter, _) = Run("a\nb\r\nc\n\r\n.\r\n");

        Assert.That(output, Is.EqualTo("a\r\nb\r\nc\r\n\r\n"));
        Assert.That(filter.NormalisedLineFeeds, Is.EqualTo(2));
        Assert.That(filter.Problem, Is.EqualTo(DataProblem.None));
    }

    // The SMTP smuggling end-of-data variants: none of them may end the data, and none may reach the
    // upstream as a lone dot line.
    [TestCase("\n.\n")]
    [TestCase("\r\n.\n")]
    [TestCase("\n.\r\n")]
    public void A_smuggled_end_of_data_with_bare_lf_is_restuffed_not_ended(string marker)
    {
        var input = "Subject: a\r\n\r\nbody" + marker + "MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\n";
        var (output, filter, consumed) = Run(input);

        Assert.That(filter.Completed, Is.True);
        Assert.That(consumed, Is.EqualTo(input.Length), "only the final CRLF.CRLF ends the data");
        Assert.That(output, Does.Contain("\r\n..\r\nMAIL FROM:<evil@x>\r\n"), "the fake end became a stuffed dot line inside the message");
        Assert.That(output, Does.Not.Contain("\r\n.\r\n"));
        Assert.That(output.Replace("\r\n", "", StringComparison.Ordinal), Does.Not.Contain("\n").And.Not.Contain("\r"));
    }

    [TestCase("\r.\r")]
    [TestCase("\r.\n")]
    [TestCase("\n.\r")]
    [TestCase("\r.\r\n")]
    [TestCase("\r\n.\r")]
    public void A_smuggled_end_of_data_with_bare_cr_makes_the_message_unacceptable(string marker)
    {
        var input = "body" + marker + "MAIL FROM:<evil@x>\r\n.\r\n";
        var (_, filter, consumed) = Run(input);

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.BareCarriageReturn));
        Assert.That(filter.Completed, Is.True);
        Assert.That(consumed, Is.EqualTo(input.Length));
    }

    [Test]
    public void A_nul_byte_makes_the_message_unacceptable()
    {
        var (_, filter, _) = Run("a\0b\r\n.\r\n");

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.NulByte));
        Assert.That(filter.Completed, Is.True);
    }

    [Test]
    public void A_nul_between_a_dot_and_crlf_does_not_end_the_data()
    {
        var input = "a\r\n.\0\r\nMAIL FROM:<e@x>\r\n.\r\n";
        var (_, filter, consumed) = Run(input);

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.NulByte));
        Assert.That(consumed, Is.EqualTo(input.Length));
    }

    [Test]
    public void Output_stops_at_the_first_problem()
    {
        var (output, filter, _) = Run("good\r\nbad\rline\r\nmore\r\n.\r\n");

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.BareCarriageReturn));
        Assert.That(output, Does.Not.Contain("more"));
    }

    [Test]
    public void A_message_over_the_size_limit_is_flagged_and_still_consumed_to_its_end()
    {
        var body = new string('x', 998) + "\r\n";
        var input = string.Concat(Enumerable.Repeat(body, 20)) + ".\r\nQUIT\r\n";
        var (_, filter, consumed) = Run(input, chunk: 1000, max: 10_000);

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.TooBig));
        Assert.That(filter.Completed, Is.True);
        Assert.That(consumed, Is.EqualTo(input.Length - "QUIT\r\n".Length));
    }

    [Test]
    public void A_message_exactly_at_the_size_limit_is_accepted()
    {
        var body = "0123456789\r\n";
        var (_, filter, _) = Run(body + ".\r\n", max: body.Length);

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.None));
        Assert.That(filter.Size, Is.EqualTo(body.Length));
    }

    [Test]
    public void A_line_over_the_line_limit_is_flagged()
    {
        var (_, filter, _) = Run(new string('y', 1001) + "\r\n.\r\n", maxLine: 1000);

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.LineTooLong));
    }

    [Test]
    public void A_line_at_the_line_limit_passes()
    {
        var (_, filter, _) = Run(new string('y', 998) + "\r\n.\r\n", maxLine: 1000);

        Assert.That(filter.Problem, Is.EqualTo(DataProblem.None));
    }

    [Test]
    public void Eight_bit_bytes_pass_unchanged()
    {
        var (output, _, _) = Run("caf\u00e9 \u00ff\u0080\r\n.\r\n");

        Assert.That(output, Is.EqualTo("caf\u00e9 \u00ff\u0080\r\n"));
    }

    [Test]
    public void Without_an_end_marker_the_filter_waits_for_more()
    {
        var (output, filter, consumed) = Run("line\r\n.");

        Assert.That(filter.Completed, Is.False);
        Assert.That(consumed, Is.EqualTo(7));
        Assert.That(output, Is.EqualTo("line\r\n"), "the held dot is not written until we know what follows");
    }
}
