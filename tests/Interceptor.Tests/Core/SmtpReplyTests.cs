using Interceptor.Core.Replies;

namespace Interceptor.Tests.Core;

public class SmtpReplyTests
{
    [Test]
    public void Writes_a_single_line_with_enhanced_code()
    {
        var reply = new SmtpReply(451, "4.7.1", "hourly message quota for user alice exhausted (200/200); try later");

        Assert.That(reply.ToWire(), Is.EqualTo("451 4.7.1 hourly message quota for user alice exhausted (200/200); try later\r\n"));
        Assert.That(reply.IsTransientFailure, Is.True);
    }

    [Test]
    public void Writes_continuation_lines_with_a_dash()
    {
        var reply = new SmtpReply(250, null, ["host", "SIZE 10"]);

        Assert.That(reply.ToWire(), Is.EqualTo("250-host\r\n250 SIZE 10\r\n"));
        Assert.That(reply.IsPositive, Is.True);
    }

    [TestCase(199)]
    [TestCase(600)]
    public void Refuses_codes_outside_2xx_to_5xx(int code)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new SmtpReply(code, null, "x"));
    }

    [Test]
    public void Formats_for_logs_on_one_line()
    {
        Assert.That(new SmtpReply(550, "5.1.1", ["a", "b"]).ToString(), Is.EqualTo("550 5.1.1 a b"));
    }

    [Test]
    public void What_logs_and_the_journal_keep_of_a_huge_reply_is_its_start_and_how_much_more_there_was()
    {
        // Her MX's 200 lines of 4,090 characters: the client gets them all, a log line or a row 1,024 and a count.
        var reply = new SmtpReply(554, "5.7.1", Enumerable.Repeat(new string('x', 4090), 200).ToList());

        var recorded = reply.ToString();

        Assert.That(recorded, Is.EqualTo($"554 5.7.1 {new string('x', SmtpReply.MaxRecordedChars)}… ({(4091 * 200) - 1 - SmtpReply.MaxRecordedChars} more characters)"));
        Assert.That(reply.ToWire(), Has.Length.EqualTo(200 * (4090 + 12)), "the wire form is whole");
    }
}
