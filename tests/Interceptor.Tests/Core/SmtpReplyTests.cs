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
}
